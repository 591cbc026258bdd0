package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
)

// credentialRoutes: keypairs, bearer tokens and "who am I".
func (s *Server) credentialRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/keypairs", summary: "Create a keypair; its secret is shown only in this response",
			access: keypairSigned, handler: s.createKeypair, status: http.StatusCreated,
			request: createKeypairRequest{}, response: createdKeypair{}},
		{method: "GET", pattern: "/api/v1/keypairs", summary: "List the caller's (or, for admins, a user's) keypairs, newest first",
			access: authenticated, handler: s.listKeypairs, response: page[bridge.Keypair]{},
			query: append([]param{{"user_id", "integer", "whose keypairs (admins); the caller's when absent"}}, pageParams...)},
		{method: "DELETE", pattern: "/api/v1/keypairs/{access_key}", summary: "Revoke a keypair",
			access: authenticated, handler: s.revokeKeypair, status: http.StatusNoContent},
		{method: "POST", pattern: "/api/v1/tokens", summary: "Mint a bearer token for the caller",
			access: keypairSigned, handler: s.createToken, status: http.StatusCreated,
			request: createTokenRequest{}, response: createdToken{}},
		{method: "GET", pattern: "/api/v1/me", summary: "The caller: user, role, domain and how they authenticated",
			access: authenticated, handler: s.me, response: meResponse{}},
	}
}

type createKeypairRequest struct {
	// UserID is whose keypair to create; 0 means the caller's own. Only
	// superadmins create keypairs for others (domain admins list and revoke).
	UserID      int64  `json:"user_id,omitempty"`
	Description string `json:"description,omitempty"`
}

type createdKeypair struct {
	AccessKey   string `json:"access_key"`
	SecretKey   string `json:"secret_key"`
	UserID      int64  `json:"user_id"`
	Description string `json:"description"`
}

func (s *Server) createKeypair(w http.ResponseWriter, r *http.Request) {
	var in createKeypairRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	actor := ActorFrom(r.Context())
	if in.UserID == 0 {
		in.UserID = actor.UserID
	}
	ak, sk, err := s.b.CreateKeypair(r.Context(), actor, in.UserID, in.Description)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // the secret must not linger in caches
	writeJSON(w, r, http.StatusCreated, createdKeypair{AccessKey: ak, SecretKey: sk, UserID: in.UserID, Description: in.Description})
}

func (s *Server) listKeypairs(w http.ResponseWriter, r *http.Request) {
	pr, ok := readPage(w, r)
	if !ok {
		return
	}
	actor := ActorFrom(r.Context())
	userID := actor.UserID
	if v := r.URL.Query().Get("user_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			p := badRequest.with("user_id %q: want a positive integer", v)
			p.Field = "user_id"
			writeProblem(w, r, p)
			return
		}
		userID = id
	}
	var after *bridge.KeypairCursor
	if pr.After != nil {
		after = &bridge.KeypairCursor{CreatedAt: pr.After.CreatedAt, AccessKey: pr.After.ID}
	}
	keys, err := s.b.ListKeypairs(r.Context(), actor, userID, after, pr.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, newPage(keys, pr, func(k bridge.Keypair) position {
		return position{CreatedAt: k.CreatedAt, ID: k.AccessKey}
	}))
}

func (s *Server) revokeKeypair(w http.ResponseWriter, r *http.Request) {
	if err := s.b.RevokeKeypair(r.Context(), ActorFrom(r.Context()), r.PathValue("access_key")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type createTokenRequest struct {
	// TTLSeconds is the token's lifetime; 0 means one hour.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

type createdToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var in createTokenRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	ttl := time.Hour
	if in.TTLSeconds != 0 {
		maxTTL := int64(bridge.MaxTokenTTL / time.Second)
		if in.TTLSeconds < 0 || in.TTLSeconds > maxTTL {
			p := invalidRequest.with("ttl_seconds %d: want 1 to %d (24 hours)", in.TTLSeconds, maxTTL)
			p.Field = "ttl_seconds"
			writeProblem(w, r, p)
			return
		}
		ttl = time.Duration(in.TTLSeconds) * time.Second
	}
	actor := ActorFrom(r.Context())
	token, expires, err := s.b.CreateToken(r.Context(), actor, actor.UserID, ttl)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusCreated, createdToken{Token: token, ExpiresAt: expires})
}

type meResponse struct {
	bridge.User
	Auth authView `json:"auth"`
}

// authView is how the caller authenticated.
type authView struct {
	Method    string     `json:"method"` // "keypair" or "token"
	AccessKey string     `json:"access_key,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	u, err := s.b.User(r.Context(), st.actor, st.actor.UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := meResponse{User: u, Auth: authView{Method: st.cred.method, AccessKey: st.cred.accessKey}}
	if st.cred.method == "token" {
		out.Auth.ExpiresAt = &st.cred.expires
	}
	writeJSON(w, r, http.StatusOK, out)
}
