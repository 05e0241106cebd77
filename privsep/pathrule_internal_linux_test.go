package privsep

import "testing"

func TestPathRuleMatch(t *testing.T) {
	for _, tt := range []struct {
		rule    PathRule
		path    string
		rel     string
		matches bool
	}{
		{PathRule{Path: "/srv", Beneath: true}, "/srv", ".", true},
		{PathRule{Path: "/srv", Beneath: true}, "/srv/a/b", "a/b", true},
		{PathRule{Path: "/srv", Beneath: true}, "/srvx/a", "", false},
		{PathRule{Path: "/srv", Beneath: true}, "/sr", "", false},
		{PathRule{Path: "/", Beneath: true}, "/etc", "etc", true},
		{PathRule{Path: "/", Beneath: true}, "/", ".", true},
		{PathRule{Path: "/srv/f"}, "/srv/f", "f", true},
		{PathRule{Path: "/srv/f"}, "/srv/f/g", "", false},
		{PathRule{Path: "/srv"}, "/srv/a", "", false},
	} {
		rel, ok := tt.rule.match(tt.path)
		if ok != tt.matches || ok && rel != tt.rel {
			t.Errorf("%+v.match(%q) = %q, %v; want %q, %v", tt.rule, tt.path, rel, ok, tt.rel, tt.matches)
		}
	}
}
