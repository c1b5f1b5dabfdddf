package mgmt

import (
	"os"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesRouter keeps openapi.yaml and Routes in step.
func TestOpenAPIMatchesRouter(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var spec, router []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				spec = append(spec, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range Routes {
		router = append(router, r.Method+" "+r.Path)
	}
	sort.Strings(spec)
	sort.Strings(router)
	if strings.Join(spec, "\n") != strings.Join(router, "\n") {
		t.Fatalf("openapi.yaml has\n%s\nthe router has\n%s", strings.Join(spec, "\n"), strings.Join(router, "\n"))
	}
}
