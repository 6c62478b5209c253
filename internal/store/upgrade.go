package store

import (
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// migrationSteps are the parts of migrations their SQL cannot do on both
// stores (reading lines out of a text): each runs after its version's
// statements, in the same transaction, so once.
var migrationSteps = map[int]func(tx *gorm.DB) error{
	21: countDeletesBeforeTheChain,
}

// countDeletesBeforeTheChain completes migration 0020's seed of the
// deleted counts (privacy_request_deleted) of the deletes still in flight.
// 0020 read their "N record(s) deleted in X" lines from the audit chain,
// but 0008 created the chain empty: a delete whose first attempt ran
// before it has those lines in its audit text only, and its receipt said
// 0 rows deleted where the audit says 3. The chain holds the text's last
// lines (verifyRequestAudits checks it), so the lines before them are the
// ones 0020 did not count.
func countDeletesBeforeTheChain(tx *gorm.DB) error {
	rows, err := tx.Raw(`SELECT q.id, q.audit, (SELECT COUNT(*) FROM privacy_audit_chain c WHERE c.request_id = q.id)
		FROM privacy_requests q WHERE q.type = 2 AND q.status < 7`).Rows()
	if err != nil {
		return err
	}
	deleted := map[int64]map[string]int64{}
	for rows.Next() {
		var (
			id, chained int64
			audit       string
		)
		if err := rows.Scan(&id, &audit, &chained); err != nil {
			rows.Close()
			return err
		}
		lines := strings.Split(strings.TrimSuffix(audit, "\n"), "\n")
		for _, l := range lines[:max(0, len(lines)-int(chained))] {
			if n, schema, ok := deletedLine(l); ok {
				if deleted[id] == nil {
					deleted[id] = map[string]int64{}
				}
				deleted[id][schema] += n
			}
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// In chunks: one statement's parameters are bounded.
	chunk := map[int64]map[string]int64{}
	for id, counts := range deleted {
		chunk[id] = counts
		if len(chunk) == 500 {
			if err := countDeleted(tx, chunk); err != nil {
				return err
			}
			clear(chunk)
		}
	}
	return countDeleted(tx, chunk)
}

// deletedLine reads one audit text line of a DELETE, "<time> N record(s)
// deleted in <schema>" (privacy's words, written with DeleteOwned).
func deletedLine(line string) (n int64, schema string, ok bool) {
	parts := strings.SplitN(line, " ", 3) // date, time, text (auditText)
	if len(parts) != 3 {
		return 0, "", false
	}
	count, schema, found := strings.Cut(parts[2], " record(s) deleted in ")
	if !found || schema == "" {
		return 0, "", false
	}
	n, err := strconv.ParseInt(count, 10, 64)
	return n, schema, err == nil
}
