package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
)

// VFolderHost is a storage host folders can be created on.
type VFolderHost struct {
	Name        string `json:"name"`
	QuotaMethod string `json:"quota_method"`
	MaxFileSize int64  `json:"max_file_size"`
}

// NewVFolder asks for a folder: the caller's own, or with Project
// ("domain/project") a project's.
type NewVFolder struct {
	Name       string `json:"name"`
	Host       string `json:"host"`
	Project    string `json:"project,omitempty"`
	UsageMode  string `json:"usage_mode,omitempty"`  // general (default), data or model
	Permission string `json:"permission,omitempty"`  // project members' access: ro, rw (default), rw-delete
	QuotaBytes *int64 `json:"quota_bytes,omitempty"` // default: the policy's
}

// VFolder is a folder as the gateway reports it; Access is what the caller
// may do with it (ro, rw, rw-delete or owner).
type VFolder struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Host          string     `json:"host"`
	Owner         string     `json:"owner"`
	OwnerKind     string     `json:"owner_kind"`
	UsageMode     string     `json:"usage_mode"`
	Permission    string     `json:"permission"`
	Access        string     `json:"access"`
	QuotaBytes    *int64     `json:"quota_bytes"`
	UsageBytes    int64      `json:"usage_bytes"`
	ScannedAt     *time.Time `json:"scanned_at"`
	Status        string     `json:"status"`
	StatusMessage string     `json:"status_message"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// VFolderShare is one user's access to a folder by invitation.
type VFolderShare struct {
	VFolderID  string     `json:"vfolder_id"`
	VFolder    string     `json:"vfolder"`
	Owner      string     `json:"owner"`
	UserID     int64      `json:"user_id"`
	Username   string     `json:"username"`
	Permission string     `json:"permission"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	AcceptedAt *time.Time `json:"accepted_at"`
}

// FileEntry describes a file or directory in a folder.
type FileEntry struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Type    string    `json:"type"` // file, dir, symlink or other
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	ModTime time.Time `json:"mtime"`
}

// FilePage is one page of a directory listing; Next, when set, continues it.
type FilePage struct {
	Items []FileEntry `json:"items"`
	Next  string      `json:"next"`
}

func vfolderPath(id string, rest string) string {
	return "/api/v1/vfolders/" + url.PathEscape(id) + rest
}

// VFolderHosts lists the storage hosts.
func (c *Client) VFolderHosts(ctx context.Context) ([]VFolderHost, error) {
	var out []VFolderHost
	return out, c.do(ctx, "GET", "/api/v1/vfolder-hosts", nil, &out)
}

// CreateVFolder creates a folder.
func (c *Client) CreateVFolder(ctx context.Context, nv NewVFolder) (VFolder, error) {
	var out VFolder
	return out, c.do(ctx, "POST", "/api/v1/vfolders", nv, &out)
}

// VFolders lists the folders the caller may use; all lists every folder an
// admin administers.
func (c *Client) VFolders(ctx context.Context, all bool) ([]VFolder, error) {
	var out Page[VFolder]
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	return out.Items, c.do(ctx, "GET", withQuery("/api/v1/vfolders", q), nil, &out)
}

// VFolder gets a folder by id.
func (c *Client) VFolder(ctx context.Context, id string) (VFolder, error) {
	var out VFolder
	return out, c.do(ctx, "GET", vfolderPath(id, ""), nil, &out)
}

// DeleteVFolder deletes a folder and its files; confirm is its name.
func (c *Client) DeleteVFolder(ctx context.Context, id, confirm string) error {
	return c.do(ctx, "DELETE", withQuery(vfolderPath(id, ""), url.Values{"confirm": {confirm}}), nil, nil)
}

// ScanVFolder measures a folder's usage now.
func (c *Client) ScanVFolder(ctx context.Context, id string) (VFolder, error) {
	var out VFolder
	return out, c.do(ctx, "POST", vfolderPath(id, "/usage"), nil, &out)
}

// ShareVFolder invites a user with a permission (ro, rw, rw-delete), or
// changes an existing share's.
func (c *Client) ShareVFolder(ctx context.Context, id, username, permission string) (VFolderShare, error) {
	var out VFolderShare
	return out, c.do(ctx, "PUT", vfolderPath(id, "/shares/"+url.PathEscape(username)), map[string]string{"permission": permission}, &out)
}

// VFolderShares lists who a folder is shared with.
func (c *Client) VFolderShares(ctx context.Context, id string) ([]VFolderShare, error) {
	var out []VFolderShare
	return out, c.do(ctx, "GET", vfolderPath(id, "/shares"), nil, &out)
}

// RevokeVFolderShare ends a user's access.
func (c *Client) RevokeVFolderShare(ctx context.Context, id string, userID int64) error {
	return c.do(ctx, "DELETE", vfolderPath(id, "/shares/"+strconv.FormatInt(userID, 10)), nil, nil)
}

// VFolderInvitations lists invitations waiting for the caller's answer.
func (c *Client) VFolderInvitations(ctx context.Context) ([]VFolderShare, error) {
	var out []VFolderShare
	return out, c.do(ctx, "GET", "/api/v1/vfolder-invitations", nil, &out)
}

// AnswerVFolderInvitation accepts or declines an invitation to a folder.
func (c *Client) AnswerVFolderInvitation(ctx context.Context, id string, accept bool) (VFolderShare, error) {
	var out VFolderShare
	return out, c.do(ctx, "POST", "/api/v1/vfolder-invitations/"+url.PathEscape(id), map[string]bool{"accept": accept}, &out)
}

// ListFiles lists a directory by name; after is the previous page's Next.
func (c *Client) ListFiles(ctx context.Context, id, dir, after string, limit int) (FilePage, error) {
	q := url.Values{"path": {dir}}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out FilePage
	return out, c.do(ctx, "GET", withQuery(vfolderPath(id, "/files"), q), nil, &out)
}

// StatFile describes a path.
func (c *Client) StatFile(ctx context.Context, id, p string) (FileEntry, error) {
	var out FileEntry
	return out, c.do(ctx, "GET", withQuery(vfolderPath(id, "/stat"), url.Values{"path": {p}}), nil, &out)
}

// Mkdir creates a directory (with parents, its missing parents too).
func (c *Client) Mkdir(ctx context.Context, id, p string, parents bool) (FileEntry, error) {
	var out FileEntry
	return out, c.do(ctx, "POST", vfolderPath(id, "/mkdir"), map[string]any{"path": p, "parents": parents}, &out)
}

// MoveFile renames or moves a path within a folder.
func (c *Client) MoveFile(ctx context.Context, id, from, to string) (FileEntry, error) {
	var out FileEntry
	return out, c.do(ctx, "POST", vfolderPath(id, "/move"), map[string]string{"from": from, "to": to}, &out)
}

// CopyFile copies a path within a folder.
func (c *Client) CopyFile(ctx context.Context, id, from, to string) (FileEntry, error) {
	var out FileEntry
	return out, c.do(ctx, "POST", vfolderPath(id, "/copy"), map[string]string{"from": from, "to": to}, &out)
}

// DeleteFile deletes a file or empty directory, or with recursive a tree
// (the confirmation is sent for you: calling with recursive is the
// confirmation).
func (c *Client) DeleteFile(ctx context.Context, id, p string, recursive bool) error {
	q := url.Values{"path": {p}}
	if recursive {
		q.Set("recursive", "true")
		q.Set("confirm", p)
	}
	return c.do(ctx, "DELETE", withQuery(vfolderPath(id, "/files"), q), nil, nil)
}

// Download streams a file from offset (0 for all of it), or a directory as
// a zip. The caller closes the reader.
func (c *Client) Download(ctx context.Context, id, p string, offset int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+withQuery(vfolderPath(id, "/download"), url.Values{"path": {p}}), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.sendRequest(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer cancel()
		defer resp.Body.Close()
		return nil, readProblem(resp)
	}
	return &cancelOnClose{resp.Body, cancel}, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

// sendRequest signs (empty body) or authorises req and sends it through a
// client without a timeout: a download takes as long as it takes; ctx
// bounds it.
func (c *Client) sendRequest(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", c.userAgent)
	switch {
	case c.accessKey != "":
		if err := sign.Sign(req, nil, c.accessKey, c.secret, time.Now()); err != nil {
			return nil, err
		}
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.streaming().Do(req)
}

// streaming is the client's transport without its overall timeout.
func (c *Client) streaming() *http.Client {
	hc := *c.http
	hc.Timeout = 0
	return &hc
}

// Upload is a resumable upload in progress: Location is where its bytes go.
type Upload struct {
	ID        string    `json:"id"`
	Path      string    `json:"path"`
	Length    int64     `json:"length"`
	Offset    int64     `json:"offset"`
	ExpiresAt time.Time `json:"expires_at"`
	Location  string    `json:"-"`
}

// CreateUpload starts a tus upload of length bytes to p in a folder. The
// quota is checked now: a file that cannot fit is refused before any byte
// is sent.
func (c *Client) CreateUpload(ctx context.Context, id, p string, length int64) (Upload, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+vfolderPath(id, "/uploads"), nil)
	if err != nil {
		return Upload{}, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(length, 10))
	req.Header.Set("Upload-Metadata", "path "+base64.StdEncoding.EncodeToString([]byte(p)))
	resp, err := c.sendRequest(req)
	if err != nil {
		return Upload{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return Upload{}, readProblem(resp)
	}
	var up Upload
	if err := json.NewDecoder(resp.Body).Decode(&up); err != nil {
		return Upload{}, fmt.Errorf("decoding the new upload: %w", err)
	}
	up.Location = resp.Header.Get("Location")
	return up, nil
}

// UploadOffset asks how many bytes of an upload the gateway holds.
func (c *Client) UploadOffset(ctx context.Context, up Upload) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "HEAD", c.base+up.Location, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := c.streaming().Do(req) // the token in Location authorises it
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: "upload offset unavailable"}
	}
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// AppendUpload sends n bytes from r at offset and returns the new offset.
func (c *Client) AppendUpload(ctx context.Context, up Upload, offset int64, r io.Reader, n int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "PATCH", c.base+up.Location, io.NopCloser(r))
	if err != nil {
		return offset, err
	}
	req.ContentLength = n
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := c.streaming().Do(req)
	if err != nil {
		return offset, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return offset, readProblem(resp)
	}
	io.Copy(io.Discard, resp.Body)
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// UploadChunk is how much UploadFile sends per request: a failure costs at
// most one chunk's retransmission.
const UploadChunk = 256 << 20

// UploadFile uploads size bytes from r to p in a folder, in chunks,
// resuming from the gateway's offset after a failed chunk (up to three
// times in a row).
func (c *Client) UploadFile(ctx context.Context, id, p string, r io.ReaderAt, size int64) (FileEntry, error) {
	up, err := c.CreateUpload(ctx, id, p, size)
	if err != nil {
		return FileEntry{}, err
	}
	offset, failures := up.Offset, 0
	for offset < size {
		n := min(UploadChunk, size-offset)
		next, err := c.AppendUpload(ctx, up, offset, io.NewSectionReader(r, offset, n), n)
		if err == nil {
			offset, failures = next, 0
			continue
		}
		var prob *Problem
		if failures++; failures > 3 || ctx.Err() != nil || (errors.As(err, &prob) && prob.Status != http.StatusConflict) {
			return FileEntry{}, fmt.Errorf("uploading %s at byte %d: %w", p, offset, err)
		}
		if offset, err = c.UploadOffset(ctx, up); err != nil {
			return FileEntry{}, fmt.Errorf("resuming upload of %s: %w", p, err)
		}
	}
	return c.StatFile(ctx, id, p)
}

// CancelUpload abandons an upload.
func (c *Client) CancelUpload(ctx context.Context, up Upload) error {
	req, err := http.NewRequestWithContext(ctx, "DELETE", c.base+up.Location, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := c.streaming().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return readProblem(resp)
	}
	return nil
}
