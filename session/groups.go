package session

// Group is an operator group, as ACC reports it in userInfo
// (<login-group id="…"/>). ACC grants named rights through groups; here an
// operator holds rights directly, and belongs to the built-in group of each
// right it holds. The ids are ours (ACC's are per instance, like 1060 in
// acc-js-sdk's captured Logon) and never change.
type Group struct {
	ID    int64
	Name  string // internal name
	Right string // the named right the group grants
}

// Groups are the built-in groups, one per named right.
var Groups = []Group{
	{ID: 1, Name: "admin", Right: RightAdmin},
	{ID: 2, Name: "privacy", Right: RightPrivacy},
}

// GroupsOf returns the groups of an operator holding rights, in the order
// of Groups.
func GroupsOf(rights []string) []Group {
	var out []Group
	for _, g := range Groups {
		for _, r := range rights {
			if r == g.Right {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
