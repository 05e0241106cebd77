package wire

import "testing"

// TestInternedOpDecodesWithoutAllocating: a request for an operation passed
// to Intern decodes with no allocation; any other still decodes, to its own
// copy of the name.
func TestInternedOpDecodesWithoutAllocating(t *testing.T) {
	Intern("svc.echo")
	for _, tc := range []struct {
		op     string
		allocs float64
	}{
		{"svc.echo", 0},
		{"svc.other", 1},
	} {
		t.Run(tc.op, func(t *testing.T) {
			b, err := Append(nil, &Msg{Kind: KindRequest, ID: 1, Op: tc.op, Payload: []byte("x")}, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			var got Msg
			allocs := testing.AllocsPerRun(100, func() {
				got, err = Decode(b, 0, DefaultLimits)
			})
			if err != nil || got.Op != tc.op {
				t.Fatalf("Decode: op %q, err %v; want op %q", got.Op, err, tc.op)
			}
			if allocs != tc.allocs {
				t.Errorf("Decode of op %q: %v allocations, want %v", tc.op, allocs, tc.allocs)
			}
		})
	}
}
