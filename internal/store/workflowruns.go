package store

import (
	"context"
	"strconv"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Workflow states as stored in workflows.state: the values of xtk:workflow's
// "state" enumeration (schemas/xml/xtk_workflow.xml).
const (
	WorkflowEdition  = 0
	WorkflowStarted  = 11
	WorkflowStopping = 12
	WorkflowFinished = 20
)

// WorkflowRun is a technical workflow's row: its state and its last run.
type WorkflowRun struct {
	ID           int64 `gorm:"primaryKey"`
	InternalName string
	Label        string
	State        int
	LastStart    *time.Time
	LastEnd      *time.Time
	LastResult   *string
	RunBy        *string
	LeaseUntil   *time.Time
}

// TableName pins the table name for gorm.
func (WorkflowRun) TableName() string { return "workflows" }

// FindWorkflowRun finds a workflow by internal name or by id, as ACC
// addresses workflows ("collectPrivacyRequests" or "2").
func (d *DB) FindWorkflowRun(ctx context.Context, ref string) (*WorkflowRun, error) {
	var w WorkflowRun
	q := d.db.WithContext(ctx)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		q = q.Where("id = ?", id)
	} else {
		q = q.Where("internal_name = ?", ref)
	}
	err := q.Take(&w).Error
	return &w, translate(err, "Workflow")
}

// StartWorkflowRun takes the run of workflow id for worker until now+lease:
// one conditional UPDATE, so that of replicas starting it at once exactly
// one gets it. It fails (ran false) while another run holds it, unless that
// run's lease ran out (its process died).
func (d *DB) StartWorkflowRun(ctx context.Context, id int64, worker string, lease time.Duration) (bool, error) {
	now := d.now().UTC()
	res := d.db.WithContext(ctx).Model(&WorkflowRun{}).
		Where("id = ? AND (state NOT IN ? OR lease_until IS NULL OR lease_until < ?)", id, []int{WorkflowStarted, WorkflowStopping}, now).
		Updates(map[string]any{"state": WorkflowStarted, "last_start": now, "last_end": nil, "last_result": nil,
			"run_by": worker, "lease_until": now.Add(lease)})
	if res.Error != nil {
		return false, translate(res.Error, "Workflow")
	}
	return res.RowsAffected == 1, nil
}

// RenewWorkflowRun extends worker's lease on a run it holds and reports
// whether a stop was asked for (state stopping). held is false when the
// run is no longer worker's.
func (d *DB) RenewWorkflowRun(ctx context.Context, id int64, worker string, lease time.Duration) (held, stop bool, err error) {
	now := d.now().UTC()
	res := d.db.WithContext(ctx).Model(&WorkflowRun{}).
		Where("id = ? AND run_by = ? AND state IN ?", id, worker, []int{WorkflowStarted, WorkflowStopping}).
		Update("lease_until", now.Add(lease))
	if res.Error != nil {
		return false, false, translate(res.Error, "Workflow")
	}
	if res.RowsAffected != 1 {
		return false, false, nil
	}
	w, err := d.FindWorkflowRun(ctx, strconv.FormatInt(id, 10))
	if err != nil {
		return true, false, err
	}
	return true, w.State == WorkflowStopping, nil
}

// StopWorkflowRun asks the running run of workflow id to stop (any
// replica's: its runner sees the state at its next renewal). It reports
// whether a run was running.
func (d *DB) StopWorkflowRun(ctx context.Context, id int64) (bool, error) {
	res := d.db.WithContext(ctx).Model(&WorkflowRun{}).
		Where("id = ? AND state = ?", id, WorkflowStarted).Update("state", WorkflowStopping)
	if res.Error != nil {
		return false, translate(res.Error, "Workflow")
	}
	return res.RowsAffected == 1, nil
}

// FinishWorkflowRun records the end of worker's run and its result.
func (d *DB) FinishWorkflowRun(ctx context.Context, id int64, worker, result string) error {
	now := d.now().UTC()
	res := d.db.WithContext(ctx).Model(&WorkflowRun{}).Where("id = ? AND run_by = ?", id, worker).
		Updates(map[string]any{"state": WorkflowFinished, "last_end": now, "last_result": result, "run_by": nil, "lease_until": nil})
	if res.Error != nil {
		return translate(res.Error, "Workflow")
	}
	if res.RowsAffected != 1 {
		return apperr.Errorf(apperr.Conflict, "The workflow run was taken over by another process.")
	}
	return nil
}
