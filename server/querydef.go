package server

import (
	"context"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// executeQuery is xtk:queryDef#ExecuteQuery: the queryDef document (the
// "entity" parameter, "document" for acc-js-sdk) → the result document in
// pdomOutput (acc-protocol.md §5). Queries read personal data and privacy
// requests, so they need the privacy right (or admin), as every privacy
// call. internal/querydef compiles and runs them.
func (s *Server) executeQuery(ctx context.Context, c *call) ([]any, error) {
	if err := requirePrivacyRight(c); err != nil {
		return nil, err
	}
	q := c.Element("entity")
	if q == nil {
		return nil, apperr.Errorf(apperr.Invalid, "The queryDef document is missing.")
	}
	if s.queries == nil {
		return nil, apperr.Errorf(apperr.Invalid, "campaign-privacy does not implement the method '%s'.", c.method.Name)
	}
	out, err := s.queries.ExecuteQuery(ctx, q)
	if err != nil {
		return nil, err
	}
	return []any{out}, nil
}
