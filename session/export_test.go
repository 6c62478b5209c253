package session

// CachedForTest reports how many sessions, verified tokens and address
// windows the service holds in memory.
func (s *Service) CachedForTest() (sessions, tokens, addresses int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cache), len(s.verified), len(s.fails)
}
