package forkinit

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// verifiedGo are the Go releases (major.minor) whose runtime the fast path
// was checked against: the hooks below, and the state a CLONE_VM child
// inherits (g and m shared with the parent's thread, stack growth fenced
// off by BeforeFork). A new release is checked by reading the three hooks
// in its runtime/proc.go and running the fast path's tests
// (TestChildCode, the integration suite), then added here.
var verifiedGo = []string{"go1.26"}

// TestRuntimeHooks fails when the Go toolchain building rbox is not one
// the fast path was verified with, or when its runtime no longer provides
// the hooks that forkinit reaches by linkname with the signatures forkinit
// declares, nosplit (pid 1 and the payload run AfterForkInChild on their
// small stacks; BeforeFork and AfterFork run between the clone's halves).
func TestRuntimeHooks(t *testing.T) {
	release := runtime.Version()
	if major, _, ok := strings.Cut(release+".", "."); ok {
		minor, _, _ := strings.Cut(strings.TrimPrefix(release, major+"."), ".")
		release = major + "." + minor
	}
	verified := false
	for _, v := range verifiedGo {
		verified = verified || v == release
	}
	if !verified {
		t.Errorf("Go %s (%s) is not among the releases the fast path was verified with (%v): "+
			"check the runtime's fork hooks and the children's code, then add it to verifiedGo", release, runtime.Version(), verifiedGo)
	}

	ours := linknamed(t, []string{"fork.go"}, "syscall.runtime_")
	if len(ours) != 3 {
		t.Fatalf("forkinit declares %d runtime hooks, want BeforeFork, AfterFork and AfterForkInChild: %v", len(ours), ours)
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "src", "runtime", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the runtime's sources: %v", err)
	}
	theirs := linknamed(t, files, "syscall.runtime_")
	for target, decl := range ours {
		rt, ok := theirs[target]
		if !ok {
			t.Errorf("the runtime of %s no longer provides %s", runtime.Version(), target)
			continue
		}
		if rt.signature != decl.signature {
			t.Errorf("%s: the runtime's signature is %s, forkinit declares %s", target, rt.signature, decl.signature)
		}
		if !rt.nosplit {
			t.Errorf("%s is no longer nosplit in the runtime of %s", target, runtime.Version())
		}
	}
}

// A hook is a function pushed to or pulled from another package by
// //go:linkname.
type hook struct {
	signature string // its type, as source
	nosplit   bool
}

// linknamed returns the functions of files that a //go:linkname directive
// names with a target starting with prefix, by target.
func linknamed(t *testing.T, files []string, prefix string) map[string]hook {
	t.Helper()
	hooks := map[string]hook{}
	fset := token.NewFileSet()
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), prefix) {
			continue
		}
		f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		// The directives of each function, from its doc comment.
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Doc == nil {
				continue
			}
			var target string
			nosplit := false
			for _, c := range fn.Doc.List {
				fields := strings.Fields(c.Text)
				switch {
				case len(fields) == 3 && fields[0] == "//go:linkname" && fields[1] == fn.Name.Name && strings.HasPrefix(fields[2], prefix):
					target = fields[2]
				case len(fields) == 1 && fields[0] == "//go:nosplit":
					nosplit = true
				}
			}
			if target == "" {
				continue
			}
			var sig strings.Builder
			if err := printer.Fprint(&sig, fset, fn.Type); err != nil {
				t.Fatal(err)
			}
			hooks[target] = hook{signature: sig.String(), nosplit: nosplit}
		}
	}
	return hooks
}
