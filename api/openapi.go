package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
)

// The OpenAPI document is generated from the route table, so it cannot
// drift from what the server serves: every route is an operation, with its
// access level, path and query parameters, and body schemas reflected from
// the Go types the handlers encode and decode.

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.openapi)
}

// renderOpenAPI builds the document once, when the server is made.
func (s *Server) renderOpenAPI() []byte {
	b, err := json.MarshalIndent(s.openAPIDocument(), "", "  ")
	if err != nil {
		panic("api: rendering the OpenAPI document: " + err.Error()) // only maps, slices and strings: cannot fail
	}
	return b
}

type object = map[string]any

func (s *Server) openAPIDocument() object {
	paths := object{}
	for _, rt := range s.routes {
		path := openAPIPath(rt.pattern)
		item, _ := paths[path].(object)
		if item == nil {
			item = object{}
			paths[path] = item
		}
		item[strings.ToLower(rt.method)] = operation(rt)
	}
	return object{
		"openapi": "3.1.0",
		"info": object{
			"title":   "Slurmgate API",
			"version": "v1",
			"description": "Compute sessions on a Slurm cluster. Errors are RFC 9457 problem+json documents. " +
				"Programs authenticate by signing each request with a keypair (" + sign.Scheme + ", see the keypair " +
				"security scheme); a keypair-signed request can mint short-lived bearer tokens.",
		},
		"paths":    paths,
		"security": []object{{"keypair": []string{}}, {"bearer": []string{}}, {"portal": []string{}}},
		"components": object{
			"schemas":   object{"Problem": problemSchema()},
			"responses": object{"Problem": object{"description": "The request failed; the body says why.", "content": object{"application/problem+json": object{"schema": object{"$ref": "#/components/schemas/Problem"}}}}},
			"securitySchemes": object{
				"keypair": object{
					"type": "apiKey", "in": "header", "name": "Authorization",
					"description": sign.Scheme + " request signing: headers " + sign.DateHeader + " (RFC 3339, within the server's clock skew), " +
						sign.NonceHeader + " (new for every request), " + sign.ContentSHA256Header + " (hex SHA-256 of the body) and Authorization: " +
						sign.Scheme + " Credential=<access key>, Signature=<hex HMAC-SHA256 keyed by the secret key over \"" + sign.Scheme +
						"\\n<date>\\n<nonce>\\n<METHOD>\\n<escaped path>\\n<query sorted by name then value>\\n<body hash>\">. Each signature is accepted once.",
				},
				"bearer": object{"type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/tokens, valid for at most 24 hours."},
				"portal": object{"type": "apiKey", "in": "cookie", "name": "sg_session",
					"description": "The web portal's login session, from POST /api/v1/auth/login or the OIDC callback. Requests that change state must also send the session's CSRF token in the X-CSRF-Token header."},
			},
		},
	}
}

func operation(rt *route) object {
	op := object{
		"summary":            rt.summary,
		"tags":               []string{tag(rt.pattern)},
		"x-slurmgate-access": rt.access.String(),
		"responses":          responses(rt),
	}
	// The document's global security (keypair or bearer) holds unless the
	// route says otherwise; {} is "no credentials".
	switch rt.access {
	case public:
		op["security"] = []object{}
	case keypairSigned:
		// Credentials mint credentials only from a keypair or a portal
		// login, never from a bearer token that could outlive them.
		op["security"] = []object{{"keypair": []string{}}, {"portal": []string{}}}
	case localOrSuperadmin:
		op["security"] = []object{{}, {"keypair": []string{}}, {"bearer": []string{}}, {"portal": []string{}}}
	}
	var params []object
	for _, name := range pathParams(rt.pattern) {
		params = append(params, object{"name": name, "in": "path", "required": true, "schema": object{"type": "string"}})
	}
	for _, q := range rt.query {
		params = append(params, object{"name": q.name, "in": "query", "description": q.description, "schema": object{"type": q.typ}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.request != nil {
		op["requestBody"] = object{"required": true, "content": object{"application/json": object{"schema": schemaOf(reflect.TypeOf(rt.request))}}}
	}
	return op
}

func responses(rt *route) object {
	status := rt.status
	if status == 0 {
		status = http.StatusOK
	}
	ok := object{"description": http.StatusText(status)}
	if rt.response != nil {
		ok["content"] = object{"application/json": object{"schema": schemaOf(reflect.TypeOf(rt.response))}}
	}
	return object{strconv.Itoa(status): ok, "default": object{"$ref": "#/components/responses/Problem"}}
}

// tag groups operations by resource: the segment after /api/v1/.
func tag(pattern string) string {
	rest, ok := strings.CutPrefix(pattern, "/api/v1/")
	if !ok {
		return "system"
	}
	seg, _, _ := strings.Cut(rest, "/")
	return seg
}

var wildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// openAPIPath turns a ServeMux pattern into an OpenAPI path template:
// "{rest...}" becomes "{rest}" and the end anchor "{$}" disappears.
func openAPIPath(pattern string) string {
	return wildcard.ReplaceAllString(strings.ReplaceAll(pattern, "{$}", ""), "{$1}")
}

func pathParams(pattern string) []string {
	var names []string
	for _, m := range wildcard.FindAllStringSubmatch(pattern, -1) {
		names = append(names, m[1])
	}
	return names
}

func problemSchema() object {
	kinds := make([]string, len(problemKinds))
	for i, k := range problemKinds {
		kinds[i] = k.uri()
	}
	return object{
		"type":        "object",
		"description": "RFC 9457 problem details.",
		"required":    []string{"type", "title", "status"},
		"properties": object{
			"type":       object{"type": "string", "format": "uri", "enum": kinds, "description": "What kind of problem; stable, for programs to switch on."},
			"title":      object{"type": "string", "description": "A short summary of the kind of problem."},
			"status":     object{"type": "integer", "description": "The HTTP status."},
			"detail":     object{"type": "string", "description": "What went wrong with this request, for the person who sent it."},
			"instance":   object{"type": "string", "description": "The request path."},
			"field":      object{"type": "string", "description": "The request field or query parameter at fault (400, 422)."},
			"request_id": object{"type": "string", "description": "The request's id, also in the X-Request-Id header and the server log."},
			"quota": object{
				"type":        "object",
				"description": "For quota-exceeded: the limit that refused the request, the amount asked and what is in use.",
				"properties": object{
					"scope":      object{"type": "string", "enum": []string{"user", "project", "domain"}},
					"scope_name": object{"type": "string", "description": "e.g. acme/vision"},
					"limit":      object{"type": "string", "description": "e.g. gpus, max_concurrent_sessions"},
					"max":        object{"type": "integer"},
					"in_use":     object{"type": "integer"},
					"requested":  object{"type": "integer"},
				},
			},
		},
	}
}

var timeType = reflect.TypeFor[time.Time]()

// schemaOf is the JSON Schema of what encoding/json makes of a value of
// type t.
func schemaOf(t reflect.Type) object {
	return schemaOfSeen(t, map[reflect.Type]bool{})
}

func schemaOfSeen(t reflect.Type, seen map[reflect.Type]bool) object {
	if t == timeType {
		return object{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOfSeen(t.Elem(), seen)
	case reflect.Bool:
		return object{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return object{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return object{"type": "number"}
	case reflect.String:
		return object{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return object{"type": "string", "contentEncoding": "base64"}
		}
		return object{"type": "array", "items": schemaOfSeen(t.Elem(), seen)}
	case reflect.Map:
		return object{"type": "object", "additionalProperties": schemaOfSeen(t.Elem(), seen)}
	case reflect.Struct:
		if seen[t] {
			return object{"type": "object"} // a recursive type: stop here
		}
		seen[t] = true
		defer delete(seen, t)
		props := object{}
		addFields(t, props, seen)
		return object{"type": "object", "properties": props}
	}
	return object{} // interfaces: any JSON value
}

// addFields adds t's JSON fields to props, flattening embedded structs as
// encoding/json does.
func addFields(t reflect.Type, props object, seen map[reflect.Type]bool) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, props, seen)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOfSeen(f.Type, seen)
	}
}
