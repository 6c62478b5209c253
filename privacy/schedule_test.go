package privacy

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, now, next string
	}{
		{"", "2026-11-22 00:30", "2026-11-22 01:00"},
		{"daily", "2026-11-22 01:00", "2026-11-23 01:00"},
		{"daily 03:30", "2026-11-22 04:00", "2026-11-23 03:30"},
		{"23:59", "2026-11-22 12:00", "2026-11-22 23:59"},
	}
	for _, tt := range tests {
		sc, err := ParseSchedule(tt.spec)
		if err != nil {
			t.Fatalf("%q: %v", tt.spec, err)
		}
		if got := sc.Next(at(tt.now)); !got.Equal(at(tt.next)) {
			t.Errorf("%q at %s: next %s, want %s", tt.spec, tt.now, got, tt.next)
		}
	}
	sc, err := ParseSchedule("30s")
	if err != nil || sc.Next(at("2026-11-22 00:00")) != at("2026-11-22 00:00").Add(30*time.Second) || sc.String() != "every 30s" {
		t.Fatalf("interval: %+v %v", sc, err)
	}
	for _, bad := range []string{"weekly", "25:00", "daily 1am", "100ms", "-5s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
