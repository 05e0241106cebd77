package privsep

import "testing"

func TestFileRuleMatch(t *testing.T) {
	for _, tt := range []struct {
		rule    FileRule
		path    string
		rel     string
		matches bool
	}{
		{FileRule{Path: "/srv", Recursive: true}, "/srv", ".", true},
		{FileRule{Path: "/srv", Recursive: true}, "/srv/a/b", "a/b", true},
		{FileRule{Path: "/srv", Recursive: true}, "/srvx/a", "", false},
		{FileRule{Path: "/srv", Recursive: true}, "/sr", "", false},
		{FileRule{Path: "/", Recursive: true}, "/etc", "etc", true},
		{FileRule{Path: "/", Recursive: true}, "/", ".", true},
		{FileRule{Path: "/srv/f"}, "/srv/f", "f", true},
		{FileRule{Path: "/srv/f"}, "/srv/f/g", "", false},
		{FileRule{Path: "/srv"}, "/srv/a", "", false},
	} {
		rel, ok := tt.rule.match(tt.path)
		if ok != tt.matches || ok && rel != tt.rel {
			t.Errorf("%+v.match(%q) = %q, %v; want %q, %v", tt.rule, tt.path, rel, ok, tt.rel, tt.matches)
		}
	}
}
