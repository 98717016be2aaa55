package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testFuncs returns the names of every Test, Fuzz, Benchmark and Example
// function declared in the module's _test.go files.
func testFuncs(t *testing.T, root string) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark|Example)\w*)\(`)
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestCitedTestsExist fails when a document cites a test by name (in
// backquotes, such as `TestTCPNeedsCookie`) that no _test.go file declares:
// a claim whose evidence was renamed or deleted.
func TestCitedTestsExist(t *testing.T) {
	names := testFuncs(t, "../..")
	cited := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z0-9]\\w*)`")
	for _, doc := range []string{"SECURITY.md", "RELIABILITY.md"} {
		text, err := os.ReadFile(filepath.Join("../../docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range cited.FindAllStringSubmatch(string(text), -1) {
			n++
			if !names[m[1]] {
				t.Errorf("docs/%s cites %s, which no test declares", doc, m[1])
			}
		}
		if n == 0 {
			t.Errorf("docs/%s cites no tests", doc)
		}
	}
}
