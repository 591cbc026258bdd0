package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, r, status, v)
}

// writeBody encodes v before writing the status, so an unencodable value
// (a programming error) still becomes a clean 500 instead of half a body.
func writeBody(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// A problem always encodes, so this recurses at most once.
		st := stateFrom(r.Context())
		st.logger().Error("encoding the response", "err", err)
		writeProblem(w, r, serverFault(st.id))
		return
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// decodeJSON reads the request body, which must be exactly one JSON value of
// v's type with no fields v lacks, into v. Otherwise it answers with a
// problem saying what is wrong (415 for a wrong content type, 413 for an
// oversized body, 400 for the rest, naming the field where there is one)
// and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if p := checkContentType(r.Header.Get("Content-Type")); p != nil {
		writeProblem(w, r, p)
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if p := decodeProblem(err); p != nil {
			writeProblem(w, r, p)
		} else {
			writeError(w, r, err)
		}
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeProblem(w, r, badRequest.with("the body holds more than one JSON value: unexpected data after byte %d", dec.InputOffset()))
		return false
	}
	return true
}

// checkContentType accepts application/json, optionally with charset=utf-8.
func checkContentType(header string) *problem {
	if header == "" {
		return unsupportedType.with("the request has no Content-Type; send the body as JSON with Content-Type: application/json")
	}
	mediaType, params, err := mime.ParseMediaType(header)
	if err != nil || mediaType != "application/json" {
		return unsupportedType.with("Content-Type is %q; send the body as JSON with Content-Type: application/json", header)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupportedType.with("charset %q is not supported; JSON is UTF-8", cs)
	}
	return nil
}

// decodeProblem explains a json.Decoder error; nil means the error is not
// about the JSON (reading the body failed), for writeError to map.
func decodeProblem(err error) *problem {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return badRequest.with("the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest.with("malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syntax):
		return badRequest.with("malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest.with("the body must be %s, not %s", jsonKind(typ.Type.Kind()), typ.Value)
		}
		p := badRequest.with("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind()), typ.Value)
		p.Field = typ.Field
		return p
	}
	// encoding/json reports unknown fields only by this message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		p := badRequest.with("unknown field %s", name)
		p.Field = strings.Trim(name, `"`)
		return p
	}
	return nil
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return k.String()
}
