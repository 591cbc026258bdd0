package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Lists are paginated by cursor, newest first: a page holds at most ?limit
// items (1–500, default 50), and a full page carries "next", the cursor to
// pass as ?cursor= for the items after it. A cursor is an opaque token
// (base64url of the last item's creation time and id); it needs no
// signature because it only says where to resume, and every list still
// filters by what the caller may see. A page that comes back full may be
// followed by an empty one: knowing otherwise would cost a count.

const (
	defaultPageLimit = 50
	maxPageLimit     = 500
)

// pageParams documents the query parameters of every paginated list; add
// them to the route's query.
var pageParams = []param{
	{"cursor", "string", "where to continue: the next value of the previous page"},
	{"limit", "integer", "the most items to return, 1 to 500 (default 50)"},
}

// position is an item's place in the newest-first order of a list.
type position struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// pageRequest is a list request's ?cursor and ?limit.
type pageRequest struct {
	After *position // nil for the first page
	Limit int
}

// page is the body of every list response.
type page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// readPage parses ?cursor and ?limit. On bad input it answers 400 naming
// the parameter and returns false.
func readPage(w http.ResponseWriter, r *http.Request) (pageRequest, bool) {
	q := r.URL.Query()
	pr := pageRequest{Limit: defaultPageLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			p := badRequest.with("limit %q: want an integer from 1 to %d", v, maxPageLimit)
			p.Field = "limit"
			writeProblem(w, r, p)
			return pageRequest{}, false
		}
		pr.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		pos, ok := decodeCursor(v)
		if !ok {
			p := badRequest.with("cursor %q is not one this server issued; start again without it", v)
			p.Field = "cursor"
			writeProblem(w, r, p)
			return pageRequest{}, false
		}
		pr.After = &pos
	}
	return pr, true
}

// newPage wraps one page of a list; key gives an item's position. A full
// page gets a cursor after its last item.
func newPage[T any](items []T, pr pageRequest, key func(T) position) page[T] {
	if items == nil {
		items = []T{} // "items": [], never null
	}
	p := page[T]{Items: items}
	if len(items) > 0 && len(items) >= pr.Limit {
		p.Next = encodeCursor(key(items[len(items)-1]))
	}
	return p
}

func encodeCursor(pos position) string {
	b, _ := json.Marshal(pos) // a struct of a time and a string always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (position, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return position{}, false
	}
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil || pos.CreatedAt.IsZero() || pos.ID == "" {
		return position{}, false
	}
	return pos, true
}
