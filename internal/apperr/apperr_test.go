package apperr

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestLogTextHoldsNoArguments(t *testing.T) {
	secret := "maria.secret@example.com"
	cases := []struct {
		err  error
		want string
	}{
		{Errorf(Invalid, "The namespace '%s' does not exist.", secret), "invalid: The namespace '%s' does not exist."},
		{fmt.Errorf("step: %w", Errorf(NotFound, "The entity '%s' does not exist.", secret)), "not_found: The entity '%s' does not exist."},
		{Wrap(Conflict, errors.New(`duplicate key (email)=(`+secret+`)`), "Record already exists."), "conflict: Record already exists."},
		{Wrap(Internal, errors.New("disk full"), "Database error."), "internal: Database error.: disk full"},
		{&Error{Code: Invalid, Message: secret}, "invalid: (message withheld from the log)"},
	}
	for _, c := range cases {
		if got := LogText(c.err); got != c.want {
			t.Errorf("LogText(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	// The caller's message still carries its input.
	if MessageOf(cases[0].err) != "The namespace '"+secret+"' does not exist." {
		t.Errorf("MessageOf lost the input: %q", MessageOf(cases[0].err))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("failed", "err", cases[0].err)
	if strings.Contains(buf.String(), secret) {
		t.Errorf("slog printed the input: %s", buf.String())
	}
}
