package fsetup

import (
	"testing"

	"github.com/rbox-dev/rbox/sysplan"
)

// defaultConfig is what a plain `rbox -- cmd` asks of fsetup.
func defaultConfig() Config {
	c := config()
	c.TTYGID = 5
	c.Cwd = "/"
	return c
}

func BenchmarkPlan(b *testing.B) {
	cfg := defaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		p := new(sysplan.Program)
		if err := Plan(p, &cfg); err != nil {
			b.Fatal(err)
		}
		p.Finish()
	}
}

func TestPlanOpCount(t *testing.T) {
	cfg := defaultConfig()
	var p sysplan.Program
	if err := Plan(&p, &cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("default plan: %d ops", p.Len())
}
