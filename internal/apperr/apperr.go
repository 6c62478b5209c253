// Package apperr holds the one error type of campaign-privacy.
//
// Every layer below the edges returns *Error (or wraps one) with a stable Code;
// the edges translate the code exactly once: server into an ACC SOAP fault,
// web into an HTTP status, cmd into an exit message. Message is safe to show to
// a caller: it never holds SQL, tokens, passwords or personal data. Anything
// else worth knowing goes to the log, not into Message.
package apperr

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Code classifies an error. The set is small on purpose: each edge keeps one
// table from Code to its own vocabulary.
type Code string

// The codes. Names follow benbjohnson/wtf; the ACC meaning is noted.
const (
	Invalid         Code = "invalid"          // bad input from the caller (ACC: execution fault with a detail)
	Malformed       Code = "malformed"        // the SOAP message itself is unusable (ACC: "The XML SOAP message is invalid")
	TooLarge        Code = "too_large"        // a size or count limit was hit while reading
	VersionMismatch Code = "version_mismatch" // envelope not SOAP 1.1
	MustUnderstand  Code = "must_understand"  // a mandatory SOAP header we do not process
	UnknownMethod   Code = "unknown_method"   // ACC SOP-330006
	BadLogon        Code = "bad_logon"        // ACC XSV-350012: wrong login, wrong password, locked or disabled
	BadSession      Code = "bad_session"      // ACC XSV-350008: expired, forged, revoked token
	Forbidden       Code = "forbidden"        // authenticated but lacks the right
	NotFound        Code = "not_found"
	Conflict        Code = "conflict"
	Busy            Code = "busy"     // a concurrency limit was hit; retry later
	Internal        Code = "internal" // anything unexpected; detail only in the log
)

// Error is the error type shared by every package.
type Error struct {
	Code    Code
	Message string // safe for the caller
	Err     error  // underlying cause, for the log only

	// template is the message before its arguments were filled in: what
	// the log gets (see LogText). Arguments often echo the caller's input
	// — an email sent where a namespace name belongs, a word of a queryDef
	// condition, an entity key — and the caller may see its own input in
	// the fault, but the log must never hold personal data.
	template string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted, caller-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), template: format}
}

// Wrap returns an *Error that keeps err for the log.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err, template: message}
}

// CodeOf returns the code of the first *Error in err's chain, Internal for any
// other non-nil error, and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// MessageOf returns the caller-safe message of err, or a generic text when err
// carries none (an unexpected error must not leak its text).
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != Internal {
		return e.Message
	}
	return "Internal error."
}

// LogText returns what a log line may hold of err: the code and the
// message's template, with no argument filled in. The cause is kept only
// for Internal errors, where it is the detail an operator needs; the
// cause of any other code (a database's duplicate-key text, a parser's
// complaint) may quote the caller's values. An error with no *Error in its
// chain is unexpected and logged as is.
func LogText(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	tmpl := e.template
	if tmpl == "" { // built as a literal: its message may hold anything
		tmpl = "(message withheld from the log)"
	}
	text := string(e.Code) + ": " + tmpl
	if e.Code == Internal && e.Err != nil {
		text += ": " + e.Err.Error()
	}
	return text
}

// LogValue makes slog log an *Error as LogText, wherever it is logged.
func (e *Error) LogValue() slog.Value { return slog.StringValue(LogText(e)) }

// Quote is caller text as a Message may echo it: valid UTF-8 that XML may
// hold (a byte that is not UTF-8, a control character other than TAB, LF
// and CR, U+FFFE and U+FFFF are replaced by U+FFFD), at most n bytes, cut
// on a character boundary with "…" after a cut. A fault that echoed half a
// character, bytes a header carried or a control character from a query
// parameter was not well-formed XML, and a client's XML parser failed on
// it instead of showing the fault.
func Quote(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
