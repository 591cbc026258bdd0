package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOpenAPIRouteCoverage walks both ways: every route the server registers
// is documented, and every documented operation is something the server's
// mux routes to that very route.
func TestOpenAPIRouteCoverage(t *testing.T) {
	a := newTestAPI(t, Options{})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	raw := a.wantStatus(a.request("GET", "/api/v1/openapi.json", nil), http.StatusOK)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}

	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			method = strings.ToUpper(method)
			documented[method+" "+path] = true
			// Fill each {param} with a value and ask the mux who serves it.
			target := wildcard.ReplaceAllString(path, "x")
			_, pattern := a.srv.mux.Handler(httptest.NewRequest(method, target, nil))
			if pattern == "" {
				t.Errorf("documented %s %s: the server has no route for it", method, path)
				continue
			}
			if openAPIPath(strings.TrimPrefix(pattern, method+" ")) != path {
				t.Errorf("documented %s %s: served by %q instead", method, path, pattern)
			}
		}
	}
	if len(a.srv.routes) == 0 {
		t.Fatal("no routes")
	}
	for _, rt := range a.srv.routes {
		if !documented[rt.method+" "+openAPIPath(rt.pattern)] {
			t.Errorf("route %s %s is not in the OpenAPI document", rt.method, rt.pattern)
		}
		if rt.summary == "" {
			t.Errorf("route %s %s has no summary", rt.method, rt.pattern)
		}
	}
	if len(documented) != len(a.srv.routes) {
		t.Errorf("%d documented operations, %d routes", len(documented), len(a.srv.routes))
	}
}

func TestOpenAPIDocumentDetails(t *testing.T) {
	a := newTestAPI(t, Options{})
	var doc map[string]any
	if err := json.Unmarshal(a.wantStatus(a.request("GET", "/api/v1/openapi.json", nil), http.StatusOK), &doc); err != nil {
		t.Fatal(err)
	}
	get := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: not an object at %q", strings.Join(path, "."), p)
			}
			v = m[p]
		}
		return v
	}
	revoke := get("paths", "/api/v1/keypairs/{access_key}", "delete").(map[string]any)
	params := revoke["parameters"].([]any)
	if p := params[0].(map[string]any); p["name"] != "access_key" || p["in"] != "path" || p["required"] != true {
		t.Errorf("revoke parameters %v", params)
	}
	if _, ok := revoke["responses"].(map[string]any)["204"]; !ok {
		t.Errorf("revoke responses %v, want 204", revoke["responses"])
	}
	if sec := get("paths", "/healthz", "get", "security").([]any); len(sec) != 0 {
		t.Errorf("healthz security %v, want none", sec)
	}
	if sec := fmt.Sprint(get("paths", "/api/v1/tokens", "post", "security")); sec != "[map[keypair:[]] map[portal:[]]]" {
		t.Errorf("tokens security %v, want keypair or portal login, never bearer", sec)
	}
	props := get("paths", "/api/v1/keypairs", "get", "responses", "200", "content", "application/json", "schema", "properties").(map[string]any)
	item := props["items"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	if item["created_at"].(map[string]any)["format"] != "date-time" || item["access_key"].(map[string]any)["type"] != "string" {
		t.Errorf("keypair list item schema %v", item)
	}
	me := get("paths", "/api/v1/me", "get", "responses", "200", "content", "application/json", "schema", "properties").(map[string]any)
	for _, f := range []string{"username", "domain", "role", "auth"} {
		if me[f] == nil {
			t.Errorf("the /me schema lacks %s (embedded fields must be flattened): %v", f, me)
		}
	}
	problem := get("components", "schemas", "Problem", "properties").(map[string]any)
	for _, f := range []string{"type", "title", "status", "detail", "instance", "field", "quota", "request_id"} {
		if problem[f] == nil {
			t.Errorf("the Problem schema lacks %s", f)
		}
	}
	if get("paths", "/api/v1/me", "get", "responses", "default", "$ref") != "#/components/responses/Problem" {
		t.Error("operations do not refer to the problem response")
	}
}
