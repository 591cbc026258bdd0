package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/vfolder"
)

// Files are named by a ?path= query parameter, never by the URL path: a
// URL path is cleaned and redirected by ServeMux, so "a/../b" would be
// changed before the folder's own validation could refuse it by name.
//
// Uploads speak the tus 1.0 protocol (core and creation): POST
// /vfolders/{id}/uploads with Upload-Length and the destination path
// (Upload-Metadata "path <base64>" or ?path=) reserves the bytes against the
// quota and answers 201 with a Location; PATCH to it appends at
// Upload-Offset, HEAD tells the offset to resume from, DELETE abandons it.
// The Location carries a capability token (?token=), so that appending needs
// no signing of gigabytes and works from any tus client; it is valid for
// this upload only, for a day, and the access log never records query
// strings.

// tusVersion is the protocol version spoken and required.
const tusVersion = "1.0.0"

// maxChunk bounds one PATCH request's body.
const maxChunk = 1 << 40

// vfolderRoutes: folders, sharing, files and uploads.
func (s *Server) vfolderRoutes() []route {
	pathParam := param{"path", "string", "a path inside the folder, relative to its top (\"\" or . for the top)"}
	return []route{
		{method: "GET", pattern: "/api/v1/vfolder-hosts", summary: "Storage hosts folders can be created on",
			access: authenticated, handler: s.vfolderHosts, response: []vfolder.HostConfig{}},
		{method: "POST", pattern: "/api/v1/vfolders", summary: "Create a folder: the caller's own, or a project's (project admins)",
			access: authenticated, handler: s.createVFolder, status: http.StatusCreated, request: bridge.NewVFolder{}, response: bridge.VFolder{}},
		{method: "GET", pattern: "/api/v1/vfolders", summary: "Folders the caller may use: own, their projects', shared with them; with all=true every folder an admin administers",
			access: authenticated, handler: s.listVFolders, response: page[bridge.VFolder]{},
			query: []param{{"all", "boolean", "admins: every folder of the domains they administer"}}},
		{method: "GET", pattern: "/api/v1/vfolders/{id}", summary: "Get a folder, with the caller's access",
			access: authenticated, handler: s.getVFolder, response: bridge.VFolder{}},
		{method: "DELETE", pattern: "/api/v1/vfolders/{id}", summary: "Delete a folder and all its files; ?confirm= must be its name",
			access: authenticated, handler: s.deleteVFolder, status: http.StatusNoContent,
			query: []param{{"confirm", "string", "the folder's name"}}},
		{method: "POST", pattern: "/api/v1/vfolders/{id}/usage", summary: "Measure the folder's usage on disk now",
			access: authenticated, handler: s.scanVFolder, response: bridge.VFolder{}},

		{method: "GET", pattern: "/api/v1/vfolders/{id}/shares", summary: "Who a user folder is shared with (owners and admins)",
			access: authenticated, handler: s.vfolderShares, response: []bridge.VFolderShare{}},
		{method: "PUT", pattern: "/api/v1/vfolders/{id}/shares/{username}", summary: "Invite a user to a folder, or change their permission",
			access: authenticated, handler: s.shareVFolder, request: shareRequest{}, response: bridge.VFolderShare{}},
		{method: "DELETE", pattern: "/api/v1/vfolders/{id}/shares/{user_id}", summary: "Revoke a user's access (or leave a folder shared with you)",
			access: authenticated, handler: s.revokeVFolderShare, status: http.StatusNoContent},
		{method: "GET", pattern: "/api/v1/vfolder-invitations", summary: "Invitations waiting for the caller's answer",
			access: authenticated, handler: s.vfolderInvitations, response: []bridge.VFolderShare{}},
		{method: "POST", pattern: "/api/v1/vfolder-invitations/{id}", summary: "Accept or decline an invitation to a folder",
			access: authenticated, handler: s.answerVFolderInvitation, request: invitationAnswer{}, response: bridge.VFolderShare{}},

		{method: "GET", pattern: "/api/v1/vfolders/{id}/files", summary: "List a directory, sorted by name, paginated by name",
			access: authenticated, handler: s.listVFolderFiles, response: filePage{},
			query: []param{pathParam, {"after", "string", "continue after this name: the next of the previous page"},
				{"limit", "integer", "the most entries, 1 to 5000 (default 1000)"}}},
		{method: "GET", pattern: "/api/v1/vfolders/{id}/stat", summary: "Describe a file or directory",
			access: authenticated, handler: s.statVFolderFile, response: vfolder.Entry{}, query: []param{pathParam}},
		{method: "POST", pattern: "/api/v1/vfolders/{id}/mkdir", summary: "Create a directory",
			access: authenticated, handler: s.mkdirVFolder, status: http.StatusCreated, request: mkdirRequest{}, response: vfolder.Entry{}},
		{method: "POST", pattern: "/api/v1/vfolders/{id}/move", summary: "Rename or move a file or directory within the folder (needs rw-delete)",
			access: authenticated, handler: s.moveVFolderFile, request: moveRequest{}, response: vfolder.Entry{}},
		{method: "POST", pattern: "/api/v1/vfolders/{id}/copy", summary: "Copy a file or directory within the folder; its size counts against the quota first",
			access: authenticated, handler: s.copyVFolderFile, status: http.StatusCreated, request: moveRequest{}, response: vfolder.Entry{}},
		{method: "DELETE", pattern: "/api/v1/vfolders/{id}/files", summary: "Delete a file or empty directory; recursive=true with confirm=<path> deletes a tree",
			access: authenticated, handler: s.deleteVFolderFile, status: http.StatusNoContent,
			query: []param{pathParam, {"recursive", "boolean", "delete a directory and everything in it"},
				{"confirm", "string", "for recursive deletes: the path again"}}},
		{method: "GET", pattern: "/api/v1/vfolders/{id}/download", summary: "Download a file (Range supported) or a directory as a streamed zip",
			access: authenticated, handler: s.downloadVFolderFile, query: []param{pathParam}},

		{method: "POST", pattern: "/api/v1/vfolders/{id}/uploads", summary: "Start a resumable (tus 1.0) upload: Upload-Length and the destination path; answers 201 with its Location",
			access: authenticated, handler: s.createUpload, status: http.StatusCreated, response: bridge.Upload{},
			query: []param{{"path", "string", "the destination, if Upload-Metadata has no path"}}},
		{method: "HEAD", pattern: "/api/v1/uploads/{upload}", summary: "An upload's offset (Upload-Offset), to resume from; authorised by its token",
			access: public, handler: s.uploadOffset, query: []param{{"token", "string", "the upload's token, from its Location"}}},
		{method: "PATCH", pattern: "/api/v1/uploads/{upload}", summary: "Append bytes (application/offset+octet-stream) at Upload-Offset; the file appears when complete",
			access: public, handler: s.appendUpload, status: http.StatusNoContent, query: []param{{"token", "string", "the upload's token"}}},
		{method: "DELETE", pattern: "/api/v1/uploads/{upload}", summary: "Abandon an upload and release its quota reservation",
			access: public, handler: s.cancelUpload, status: http.StatusNoContent, query: []param{{"token", "string", "the upload's token"}}},
	}
}

func (s *Server) vfolderHosts(w http.ResponseWriter, r *http.Request) {
	hosts := s.b.VFolderHosts()
	for i := range hosts {
		hosts[i].Root = "" // where it lives is the operators' business
	}
	writeJSON(w, r, http.StatusOK, hosts)
}

func (s *Server) createVFolder(w http.ResponseWriter, r *http.Request) {
	var in bridge.NewVFolder
	if !decodeJSON(w, r, &in) {
		return
	}
	v, err := s.b.CreateVFolder(r.Context(), ActorFrom(r.Context()), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/vfolders/"+v.ID)
	writeJSON(w, r, http.StatusCreated, v)
}

// boolParam reads an optional boolean query parameter, answering 400 when
// it is not one.
func boolParam(w http.ResponseWriter, r *http.Request, name string) (bool, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p := badRequest.with("%s %q: want true or false", name, v)
		p.Field = name
		writeProblem(w, r, p)
		return false, false
	}
	return b, true
}

func (s *Server) listVFolders(w http.ResponseWriter, r *http.Request) {
	all, ok := boolParam(w, r, "all")
	if !ok {
		return
	}
	vs, err := s.b.VFolders(r.Context(), ActorFrom(r.Context()), bridge.VFolderFilter{All: all})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// A person has tens of folders, not thousands: one page holds them all.
	writeJSON(w, r, http.StatusOK, page[bridge.VFolder]{Items: vs})
}

func (s *Server) getVFolder(w http.ResponseWriter, r *http.Request) {
	v, err := s.b.VFolder(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, v)
}

func (s *Server) deleteVFolder(w http.ResponseWriter, r *http.Request) {
	if err := s.b.DeleteVFolder(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), r.URL.Query().Get("confirm")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) scanVFolder(w http.ResponseWriter, r *http.Request) {
	v, err := s.b.ScanVFolderUsage(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, v)
}

// --- sharing --------------------------------------------------------------------

type shareRequest struct {
	Permission string `json:"permission"` // ro, rw or rw-delete
}

type invitationAnswer struct {
	Accept bool `json:"accept"`
}

func (s *Server) vfolderShares(w http.ResponseWriter, r *http.Request) {
	sh, err := s.b.VFolderShares(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, nonNil(sh))
}

func (s *Server) shareVFolder(w http.ResponseWriter, r *http.Request) {
	var in shareRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	sh, err := s.b.ShareVFolder(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), r.PathValue("username"), in.Permission)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sh)
}

func (s *Server) revokeVFolderShare(w http.ResponseWriter, r *http.Request) {
	uid, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil {
		writeProblem(w, r, notFoundProblem.with("no user %q", r.PathValue("user_id")))
		return
	}
	if err := s.b.RevokeVFolderShare(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), uid); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) vfolderInvitations(w http.ResponseWriter, r *http.Request) {
	inv, err := s.b.VFolderInvitations(r.Context(), ActorFrom(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, nonNil(inv))
}

func (s *Server) answerVFolderInvitation(w http.ResponseWriter, r *http.Request) {
	var in invitationAnswer
	if !decodeJSON(w, r, &in) {
		return
	}
	sh, err := s.b.AnswerVFolderInvitation(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), in.Accept)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sh)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// --- files ------------------------------------------------------------------------

// filePage is a page of a directory listing; Next, when set, is the ?after=
// of the next page.
type filePage struct {
	Items []vfolder.Entry `json:"items"`
	Next  string          `json:"next,omitempty"`
}

type mkdirRequest struct {
	Path    string `json:"path"`
	Parents bool   `json:"parents,omitempty"`
}

type moveRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func (s *Server) listVFolderFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			p := badRequest.with("limit %q: want an integer from 1 to 5000", v)
			p.Field = "limit"
			writeProblem(w, r, p)
			return
		}
		limit = n
	}
	es, more, err := s.b.ListVFolderFiles(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), q.Get("path"), q.Get("after"), limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := filePage{Items: nonNil(es)}
	if more && len(es) > 0 {
		p.Next = es[len(es)-1].Name
	}
	writeJSON(w, r, http.StatusOK, p)
}

func (s *Server) statVFolderFile(w http.ResponseWriter, r *http.Request) {
	e, err := s.b.StatVFolderFile(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, e)
}

func (s *Server) mkdirVFolder(w http.ResponseWriter, r *http.Request) {
	var in mkdirRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	e, err := s.b.MkdirVFolder(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), in.Path, in.Parents)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusCreated, e)
}

func (s *Server) moveVFolderFile(w http.ResponseWriter, r *http.Request) {
	var in moveRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	e, err := s.b.RenameVFolderFile(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), in.From, in.To)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, e)
}

func (s *Server) copyVFolderFile(w http.ResponseWriter, r *http.Request) {
	var in moveRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	e, err := s.b.CopyVFolderFile(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), in.From, in.To)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusCreated, e)
}

func (s *Server) deleteVFolderFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	recursive, ok := boolParam(w, r, "recursive")
	if !ok {
		return
	}
	p := q.Get("path")
	if recursive && q.Get("confirm") != p {
		prob := invalidRequest.with("a recursive delete removes %q and everything in it; repeat the path as confirm=%s", p, url.QueryEscape(p))
		prob.Field = "confirm"
		writeProblem(w, r, prob)
		return
	}
	if err := s.b.DeleteVFolderFile(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), p, recursive); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadVFolderFile serves a file through http.ServeContent (Range,
// If-Modified-Since, HEAD) or a directory as a zip streamed as it is
// written, without a temporary archive.
func (s *Server) downloadVFolderFile(w http.ResponseWriter, r *http.Request) {
	fsys, vf, err := s.b.VFolderFiles(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), bridge.FileRead)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer fsys.Close()
	p := r.URL.Query().Get("path")
	f, e, err := fsys.Open(p)
	if err != nil {
		writeError(w, r, bridge.FileError(err, p))
		return
	}
	defer f.Close()
	name := e.Name
	if name == "" || name == "." || name == "/" {
		// The folder's root: the download is named after the folder.
		name = vf.Name
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-cache")
	if e.Type == "dir" {
		f.Close()
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Disposition", contentDisposition(name+".zip"))
		w.WriteHeader(http.StatusOK)
		if err := fsys.WriteZip(w, p); err != nil {
			// Mid-stream: all that is left is to break the connection so
			// the client cannot take a truncated archive for a whole one.
			stateFrom(r.Context()).logger().Warn("zip download ended early", "err", err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	if e.Type != "file" {
		writeProblem(w, r, conflictProblem.with("%q is a %s, not a file or directory", p, e.Type))
		return
	}
	// Never text/html from user content: a download is a download.
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", contentDisposition(name))
	http.ServeContent(w, r, "", e.ModTime, f)
}

func contentDisposition(name string) string {
	return "attachment; filename*=UTF-8''" + url.PathEscape(name)
}

// --- uploads (tus 1.0) ----------------------------------------------------------

func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	// Whether the folder exists for the caller comes before what is wrong
	// with the request, so a stranger learns nothing either way.
	if _, err := s.b.VFolder(r.Context(), ActorFrom(r.Context()), r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	length, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	if err != nil || length < 0 {
		p := badRequest.with("Upload-Length %q: give the file's size in bytes (deferred lengths are not supported)", r.Header.Get("Upload-Length"))
		p.Field = "Upload-Length"
		writeProblem(w, r, p)
		return
	}
	dst := r.URL.Query().Get("path")
	if meta, ok := uploadMetadata(r.Header.Get("Upload-Metadata")); !ok {
		p := badRequest.with("Upload-Metadata: want comma-separated \"key base64value\" pairs")
		p.Field = "Upload-Metadata"
		writeProblem(w, r, p)
		return
	} else if dst == "" {
		// "filename" is what most tus clients send; "path" may name a
		// subdirectory too.
		dst = meta["path"]
		if dst == "" {
			dst = meta["filename"]
		}
	}
	if dst == "" {
		p := badRequest.with("the upload needs a destination: ?path= or Upload-Metadata path <base64>")
		p.Field = "path"
		writeProblem(w, r, p)
		return
	}
	up, err := s.b.CreateUpload(r.Context(), ActorFrom(r.Context()), r.PathValue("id"), dst, length)
	if err != nil {
		writeError(w, r, err)
		return
	}
	loc := "/api/v1/uploads/" + up.ID + "?token=" + url.QueryEscape(up.Token)
	w.Header().Set("Location", loc)
	w.Header().Set("Upload-Offset", strconv.FormatInt(up.Offset, 10))
	writeJSON(w, r, http.StatusCreated, up)
}

// uploadMetadata parses tus's Upload-Metadata header.
func uploadMetadata(h string) (map[string]string, bool) {
	out := map[string]string{}
	if strings.TrimSpace(h) == "" {
		return out, true
	}
	for pair := range strings.SplitSeq(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(pair), " ")
		b, err := base64.StdEncoding.DecodeString(v)
		if k == "" || err != nil {
			return nil, false
		}
		out[k] = string(b)
	}
	return out, true
}

func (s *Server) uploadOffset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Cache-Control", "no-store")
	up, err := s.b.UploadStatus(r.Context(), r.PathValue("upload"), r.URL.Query().Get("token"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(up.Offset, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(up.Length, 10))
	w.WriteHeader(http.StatusOK)
}

func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	if v := r.Header.Get("Tus-Resumable"); v != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		writeProblem(w, r, problemKind{"tus-version", "Unsupported tus version", http.StatusPreconditionFailed}.
			with("Tus-Resumable %q: this server speaks tus %s", v, tusVersion))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/offset+octet-stream" {
		writeProblem(w, r, unsupportedType.with("Content-Type %q: a PATCH carries application/offset+octet-stream", ct))
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		p := badRequest.with("Upload-Offset %q: give the offset to append at (HEAD the upload to learn it)", r.Header.Get("Upload-Offset"))
		p.Field = "Upload-Offset"
		writeProblem(w, r, p)
		return
	}
	// The server-wide body limit is for JSON; an upload's bound is its
	// Upload-Length, which the bridge enforces.
	body := http.MaxBytesReader(w, stateFrom(r.Context()).rawBody, maxChunk)
	up, err := s.b.AppendUpload(r.Context(), r.PathValue("upload"), r.URL.Query().Get("token"), offset, body)
	if err != nil {
		if up.ID != "" {
			w.Header().Set("Upload-Offset", strconv.FormatInt(up.Offset, 10))
		}
		writeError(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(up.Offset, 10))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	if err := s.b.CancelUpload(r.Context(), r.PathValue("upload"), r.URL.Query().Get("token")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
