package main

// vfolder create|ls|info|rm|share|invitations|accept|upload|download|mkdir|mv|cp:
// virtual folders and the files in them, through the REST API. Uploads
// speak tus and survive interruption: the upload's URL is kept in a state
// file, so running the same command again sends only the bytes the gateway
// does not have yet.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

const vfolderHelp = `A vfolder is a directory on shared storage that sessions mount: your own,
a project's (its members share it), or one shared with you by invitation.
Files are named FOLDER:PATH, where FOLDER is the folder's name (OWNER/NAME
when two folders you see share a name, e.g. bob/data or acme/vision/data)
or its id, and PATH is relative to the folder's top.

Examples:
   slurmgate vfolder create data
   slurmgate vfolder upload results.tar data:runs/
   slurmgate vfolder ls data:runs
   slurmgate vfolder download data:runs/results.tar
   slurmgate vfolder download data:runs            # the directory as runs.zip
   slurmgate vfolder share data bob --permission ro
   slurmgate vfolder rm data:runs --recursive --yes

`

func vfolderCommand() *cli.Command {
	return &cli.Command{
		Name:        "vfolder",
		Aliases:     []string{"vf"},
		Usage:       "create, share and transfer files to and from virtual folders",
		Description: vfolderHelp + exitCodesHelp,
		Commands: []*cli.Command{
			vfolderHostsCommand(), vfolderCreateCommand(), vfolderListCommand(), vfolderInfoCommand(), vfolderRemoveCommand(),
			vfolderShareCommand(), vfolderInvitationsCommand(), vfolderAcceptCommand(),
			vfolderUploadCommand(), vfolderDownloadCommand(), vfolderMkdirCommand(), vfolderMoveCommand(), vfolderCopyCommand(),
		},
	}
}

// vfError is apiError with hints that fit folders.
func vfError(err error, endpoint string) error {
	var p *client.Problem
	isProblem := errors.As(err, &p)
	err = apiError(err, endpoint)
	var ce *cliError
	if !isProblem || !errors.As(err, &ce) {
		return err
	}
	switch {
	case p.Status == http.StatusForbidden && p.Quota == nil:
		ce.hint = "ask the folder's owner for more access (`slurmgate vfolder share FOLDER YOU --permission rw`), or a project admin for a project folder"
	case p.Status == http.StatusNotFound:
		ce.hint = "check the folder and path: `slurmgate vfolder ls`, `slurmgate vfolder ls FOLDER:DIR`"
	}
	return ce
}

// withVFClient runs fn with an API client and turns its errors into CLI
// ones with folder hints.
func withVFClient(fn func(ctx context.Context, cmd *cli.Command, c *client.Client) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		c, cfg, err := apiClient()
		if err != nil {
			return err
		}
		return vfError(fn(ctx, cmd, c), cfg.Endpoint)
	}
}

// splitRef splits FOLDER:PATH. Folder names and ids contain no colon, so
// the first one ends the folder; the path is passed on as given, for the
// gateway to validate and name what is wrong with it.
func splitRef(ref string) (folder, p string, hasPath bool) {
	folder, p, hasPath = strings.Cut(ref, ":")
	return folder, p, hasPath
}

var uuidArg = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// resolveFolder finds a folder by id, name or OWNER/NAME among those the
// caller may use.
func resolveFolder(ctx context.Context, c *client.Client, ref string) (client.VFolder, error) {
	if ref == "" {
		return client.VFolder{}, usageErrorf("no folder given: name one as FOLDER or FOLDER:PATH (see `slurmgate vfolder ls`)")
	}
	if uuidArg.MatchString(ref) {
		return c.VFolder(ctx, ref)
	}
	vs, err := c.VFolders(ctx, false)
	if err != nil {
		return client.VFolder{}, err
	}
	var found []client.VFolder
	for _, v := range vs {
		if v.Name == ref || v.Owner+"/"+v.Name == ref {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return client.VFolder{}, &cliError{code: exitNotFound, msg: fmt.Sprintf("no folder %q that you can use", ref),
			hint: "list yours with `slurmgate vfolder ls`; a folder shared with you appears once you accept it (`slurmgate vfolder invitations`)"}
	}
	names := make([]string, len(found))
	for i, v := range found {
		names[i] = v.Owner + "/" + v.Name
	}
	return client.VFolder{}, usageErrorf("%d folders you can use are named %q (%s); name one as OWNER/NAME or by its id", len(found), ref, strings.Join(names, ", "))
}

// folderAndPath resolves a FOLDER[:PATH] argument; PATH defaults to the
// folder's top.
func folderAndPath(ctx context.Context, c *client.Client, ref string) (client.VFolder, string, error) {
	name, p, _ := splitRef(ref)
	v, err := resolveFolder(ctx, c, name)
	if p == "" {
		p = "."
	}
	return v, p, err
}

// --- folders ---------------------------------------------------------------------

func vfolderHostsCommand() *cli.Command {
	return &cli.Command{
		Name:  "hosts",
		Usage: "list the storage hosts folders can be created on",
		Flags: []cli.Flag{jsonFlag},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			hs, err := c.VFolderHosts(ctx)
			if err != nil {
				return err
			}
			if cmd.Bool("json") {
				return printJSON(cmd, nonNilSlice(hs))
			}
			rows := make([][]string, len(hs))
			for i, h := range hs {
				max := "-"
				if h.MaxFileSize > 0 {
					max = formatBytes(h.MaxFileSize)
				}
				rows[i] = []string{h.Name, h.QuotaMethod, max}
			}
			return table(cmd.Root().Writer, []string{"HOST", "QUOTA METHOD", "MAX FILE"}, rows)
		}),
	}
}

func vfolderCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a folder: yours, or with --project a project's",
		ArgsUsage: "NAME",
		Description: `Examples:
   slurmgate vfolder create data
   slurmgate vfolder create shared --project acme/vision --permission ro --quota 100G`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "host", Usage: "storage `HOST` (default: the only one; see `slurmgate vfolder hosts`)"},
			&cli.StringFlag{Name: "project", Aliases: []string{"A"}, Usage: "create it for `DOMAIN/PROJECT` (project and domain admins)"},
			&cli.StringFlag{Name: "usage-mode", Usage: "general (default), data or model"},
			&cli.StringFlag{Name: "permission", Usage: "a project folder's members' access: ro, rw (default) or rw-delete"},
			&cli.StringFlag{Name: "quota", Usage: "quota `SIZE`, e.g. 500G (default: the policy's)"},
			jsonFlag,
		},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 1); err != nil {
				return err
			}
			nv := client.NewVFolder{Name: cmd.Args().First(), Host: cmd.String("host"), Project: projectPath(cmd.String("project")),
				UsageMode: cmd.String("usage-mode"), Permission: cmd.String("permission")}
			if v := cmd.String("quota"); v != "" {
				n, err := parseBytes(v)
				if err != nil {
					return usageErrorf("--quota %q: %v", v, err)
				}
				nv.QuotaBytes = &n
			}
			if nv.Host == "" {
				hs, err := c.VFolderHosts(ctx)
				if err != nil {
					return err
				}
				if len(hs) != 1 {
					names := make([]string, len(hs))
					for i, h := range hs {
						names[i] = h.Name
					}
					return usageErrorf("the gateway has %d storage hosts (%s); choose one with --host", len(hs), strings.Join(names, ", "))
				}
				nv.Host = hs[0].Name
			}
			v, err := c.CreateVFolder(ctx, nv)
			if err != nil {
				return err
			}
			return printOne(cmd, v, fmt.Sprintf("folder %s created on %s (id %s)", v.Name, v.Host, v.ID))
		}),
	}
}

func vfolderListCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Aliases:   []string{"list"},
		Usage:     "list your folders, or with FOLDER[:DIR] the files in one",
		ArgsUsage: "[FOLDER[:DIR]]",
		Description: `Examples:
   slurmgate vfolder ls
   slurmgate vfolder ls data:runs/2024 --json`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "admins: every folder of the domains you administer"},
			jsonFlag,
		},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			switch cmd.NArg() {
			case 0:
				return listFolders(ctx, cmd, c)
			case 1:
				return listFiles(ctx, cmd, c, cmd.Args().First())
			}
			return usageErrorf("vfolder ls takes at most one FOLDER[:DIR]")
		}),
	}
}

func listFolders(ctx context.Context, cmd *cli.Command, c *client.Client) error {
	vs, err := c.VFolders(ctx, cmd.Bool("all"))
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
		return printJSON(cmd, nonNilSlice(vs))
	}
	rows := make([][]string, len(vs))
	for i, v := range vs {
		quota := "-"
		if v.QuotaBytes != nil {
			quota = formatBytes(*v.QuotaBytes)
		}
		rows[i] = []string{v.Name, v.ID, v.Host, v.Owner, v.Access, formatBytes(v.UsageBytes), quota, v.Status}
	}
	return table(cmd.Root().Writer, []string{"NAME", "ID", "HOST", "OWNER", "ACCESS", "USED", "QUOTA", "STATUS"}, rows)
}

func listFiles(ctx context.Context, cmd *cli.Command, c *client.Client, ref string) error {
	v, dir, err := folderAndPath(ctx, c, ref)
	if err != nil {
		return err
	}
	var all []client.FileEntry
	after := ""
	for {
		page, err := c.ListFiles(ctx, v.ID, dir, after, 5000)
		if err != nil {
			return err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if cmd.Bool("json") {
		return printJSON(cmd, nonNilSlice(all))
	}
	rows := make([][]string, len(all))
	for i, e := range all {
		name := e.Name
		if e.Type == "dir" {
			name += "/"
		}
		rows[i] = []string{e.Mode, formatBytes(e.Size), e.ModTime.Local().Format("2006-01-02 15:04"), name}
	}
	return table(cmd.Root().Writer, []string{"MODE", "SIZE", "MODIFIED", "NAME"}, rows)
}

func vfolderInfoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show a folder, or with FOLDER:PATH one file",
		ArgsUsage: "FOLDER[:PATH]",
		Flags:     []cli.Flag{jsonFlag},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 1); err != nil {
				return err
			}
			name, p, hasPath := splitRef(cmd.Args().First())
			v, err := resolveFolder(ctx, c, name)
			if err != nil {
				return err
			}
			if hasPath {
				e, err := c.StatFile(ctx, v.ID, p)
				if err != nil {
					return err
				}
				if cmd.Bool("json") {
					return printJSON(cmd, e)
				}
				w := cmd.Root().Writer
				fmt.Fprintf(w, "%-10s %s:%s\n%-10s %s\n%-10s %s (%d bytes)\n%-10s %s\n%-10s %d:%d\n%-10s %s\n",
					"path", v.Name, e.Path, "type", e.Type, "size", formatBytes(e.Size), e.Size, "mode", e.Mode, "owner", e.UID, e.GID,
					"modified", e.ModTime.Local().Format(time.RFC3339))
				return nil
			}
			var shares []client.VFolderShare
			if v.Access == "owner" && v.OwnerKind == "user" {
				if shares, err = c.VFolderShares(ctx, v.ID); err != nil {
					return err
				}
			}
			if cmd.Bool("json") {
				return printJSON(cmd, struct {
					client.VFolder
					Shares []client.VFolderShare `json:"shares,omitempty"`
				}{v, shares})
			}
			w := cmd.Root().Writer
			line := func(k, val string) {
				if val != "" {
					fmt.Fprintf(w, "%-12s %s\n", k, val)
				}
			}
			line("id", v.ID)
			line("name", v.Name)
			line("host", v.Host)
			line("owner", v.Owner+" ("+v.OwnerKind+")")
			line("usage mode", v.UsageMode)
			if v.OwnerKind == "project" {
				line("members", v.Permission)
			}
			line("your access", v.Access)
			used := formatBytes(v.UsageBytes)
			if v.QuotaBytes != nil {
				used += " of " + formatBytes(*v.QuotaBytes)
			}
			line("used", used)
			line("status", strings.TrimSpace(v.Status+" "+v.StatusMessage))
			line("created", v.CreatedAt.Local().Format(time.RFC3339))
			for _, s := range shares {
				line("shared with", fmt.Sprintf("%s (%s, %s)", s.Username, s.Permission, s.State))
			}
			return nil
		}),
	}
}

// confirmOrYes lets a destructive command go ahead: --yes, or a "y" typed
// at a terminal. Without either (a script that forgot --yes) it refuses.
func confirmOrYes(cmd *cli.Command, question string) error {
	if cmd.Bool("yes") {
		return nil
	}
	if !isTerminal(os.Stdin) {
		return usageErrorf("%s: confirm with --yes (there is no terminal to ask)", question)
	}
	if !confirm(os.Stdin, cmd.Root().ErrWriter, question+" [y/N] ") {
		return &cliError{code: exitError, msg: "nothing removed"}
	}
	return nil
}

func yesFlag() cli.Flag {
	return &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation (scripts)"}
}

func vfolderRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove files, or a whole folder",
		ArgsUsage: "FOLDER[:PATH]...",
		Description: `FOLDER:PATH removes a file or an empty directory; --recursive removes a
directory and everything in it. A bare FOLDER removes the folder and all its
files. Both cannot be undone: they ask first, or take --yes in scripts.

Examples:
   slurmgate vfolder rm data:old.log
   slurmgate vfolder rm data:runs --recursive --yes
   slurmgate vfolder rm scratch --yes`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "remove directories and their contents"},
			yesFlag(),
		},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if cmd.NArg() == 0 {
				return usageErrorf("vfolder rm takes FOLDER:PATH (a file) or FOLDER (the whole folder)")
			}
			for _, ref := range cmd.Args().Slice() {
				name, p, hasPath := splitRef(ref)
				v, err := resolveFolder(ctx, c, name)
				if err != nil {
					return err
				}
				if !hasPath {
					if err := confirmOrYes(cmd, fmt.Sprintf("remove folder %s and all its files (%s)?", v.Name, formatBytes(v.UsageBytes))); err != nil {
						return err
					}
					if err := c.DeleteVFolder(ctx, v.ID, v.Name); err != nil {
						return err
					}
					fmt.Fprintf(cmd.Root().ErrWriter, "removed folder %s\n", v.Name)
					continue
				}
				recursive := cmd.Bool("recursive")
				if recursive {
					if err := confirmOrYes(cmd, fmt.Sprintf("remove %s:%s and everything in it?", v.Name, p)); err != nil {
						return err
					}
				}
				if err := c.DeleteFile(ctx, v.ID, p, recursive); err != nil {
					var prob *client.Problem
					if !recursive && errors.As(err, &prob) && prob.Status == http.StatusConflict {
						return &cliError{code: exitError, msg: prob.Detail, hint: "add --recursive to remove a directory with its contents"}
					}
					return err
				}
			}
			return nil
		}),
	}
}

// --- sharing ---------------------------------------------------------------------

func vfolderShareCommand() *cli.Command {
	return &cli.Command{
		Name:      "share",
		Usage:     "invite a user to your folder, change their access, or --revoke it",
		ArgsUsage: "FOLDER USER",
		Description: `The user sees the folder once they accept (` + "`slurmgate vfolder accept`" + `).
A project's folders are shared by project membership instead.

Examples:
   slurmgate vfolder share data bob --permission ro
   slurmgate vfolder share data bob --revoke`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "permission", Aliases: []string{"p"}, Value: "ro", Usage: "ro, rw or rw-delete"},
			&cli.BoolFlag{Name: "revoke", Usage: "end the user's access"},
			jsonFlag,
		},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 2); err != nil {
				return err
			}
			v, err := resolveFolder(ctx, c, cmd.Args().Get(0))
			if err != nil {
				return err
			}
			user := cmd.Args().Get(1)
			if cmd.Bool("revoke") {
				shares, err := c.VFolderShares(ctx, v.ID)
				if err != nil {
					return err
				}
				for _, s := range shares {
					if s.Username == user {
						if err := c.RevokeVFolderShare(ctx, v.ID, s.UserID); err != nil {
							return err
						}
						fmt.Fprintf(cmd.Root().ErrWriter, "%s no longer has access to %s\n", user, v.Name)
						return nil
					}
				}
				return &cliError{code: exitNotFound, msg: fmt.Sprintf("folder %s is not shared with %s", v.Name, user),
					hint: "see who it is shared with: `slurmgate vfolder info " + v.Name + "`"}
			}
			s, err := c.ShareVFolder(ctx, v.ID, user, cmd.String("permission"))
			if err != nil {
				return err
			}
			return printOne(cmd, s, fmt.Sprintf("%s invited to %s with %s access (%s)", s.Username, s.VFolder, s.Permission, s.State))
		}),
	}
}

func vfolderInvitationsCommand() *cli.Command {
	return &cli.Command{
		Name:  "invitations",
		Usage: "list folders others invited you to",
		Flags: []cli.Flag{jsonFlag},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			inv, err := c.VFolderInvitations(ctx)
			if err != nil {
				return err
			}
			if cmd.Bool("json") {
				return printJSON(cmd, nonNilSlice(inv))
			}
			rows := make([][]string, len(inv))
			for i, s := range inv {
				rows[i] = []string{s.Owner + "/" + s.VFolder, s.VFolderID, s.Permission, s.CreatedAt.Local().Format("2006-01-02 15:04")}
			}
			return table(cmd.Root().Writer, []string{"FOLDER", "ID", "PERMISSION", "INVITED"}, rows)
		}),
	}
}

func vfolderAcceptCommand() *cli.Command {
	return &cli.Command{
		Name:      "accept",
		Usage:     "accept (or --decline) an invitation to a folder",
		ArgsUsage: "OWNER/FOLDER|ID",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "decline", Usage: "decline instead"}, jsonFlag},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 1); err != nil {
				return err
			}
			ref := cmd.Args().First()
			inv, err := c.VFolderInvitations(ctx)
			if err != nil {
				return err
			}
			var match []client.VFolderShare
			for _, s := range inv {
				if s.VFolderID == ref || s.Owner+"/"+s.VFolder == ref || s.VFolder == ref {
					match = append(match, s)
				}
			}
			switch {
			case len(match) == 0:
				return &cliError{code: exitNotFound, msg: fmt.Sprintf("no invitation to %q is waiting for you", ref),
					hint: "list them with `slurmgate vfolder invitations`"}
			case len(match) > 1:
				return usageErrorf("%d invitations match %q; name it as OWNER/FOLDER or by its id", len(match), ref)
			}
			s, err := c.AnswerVFolderInvitation(ctx, match[0].VFolderID, !cmd.Bool("decline"))
			if err != nil {
				return err
			}
			verb := "accepted"
			if cmd.Bool("decline") {
				verb = "declined"
			}
			return printOne(cmd, s, fmt.Sprintf("%s %s/%s (%s access)", verb, match[0].Owner, match[0].VFolder, match[0].Permission))
		}),
	}
}

// --- files -----------------------------------------------------------------------

func vfolderMkdirCommand() *cli.Command {
	return &cli.Command{
		Name:      "mkdir",
		Usage:     "create a directory in a folder",
		ArgsUsage: "FOLDER:PATH",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "parents", Aliases: []string{"p"}, Usage: "create missing parents too"}},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 1); err != nil {
				return err
			}
			name, p, ok := splitRef(cmd.Args().First())
			if !ok || p == "" {
				return usageErrorf("vfolder mkdir takes FOLDER:PATH, e.g. data:runs/2024")
			}
			v, err := resolveFolder(ctx, c, name)
			if err != nil {
				return err
			}
			_, err = c.Mkdir(ctx, v.ID, p, cmd.Bool("parents"))
			return err
		}),
	}
}

// moveOrCopy is mv and cp: both within one folder.
func moveOrCopy(verb string, op func(c *client.Client, ctx context.Context, id, from, to string) (client.FileEntry, error)) cli.ActionFunc {
	return withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
		if err := args(cmd, 2); err != nil {
			return err
		}
		name, from, ok := splitRef(cmd.Args().Get(0))
		if !ok || from == "" {
			return usageErrorf("vfolder %s takes FOLDER:FROM and TO (a path in the same folder)", verb)
		}
		to := cmd.Args().Get(1)
		if toFolder, toPath, ok := splitRef(to); ok {
			if toFolder != name {
				return usageErrorf("vfolder %s works within one folder; to copy between folders, download and upload", verb)
			}
			to = toPath
		}
		v, err := resolveFolder(ctx, c, name)
		if err != nil {
			return err
		}
		_, err = op(c, ctx, v.ID, from, to)
		return err
	})
}

func vfolderMoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "mv",
		Usage:     "rename or move a file or directory within a folder",
		ArgsUsage: "FOLDER:FROM TO",
		Description: `Example:
   slurmgate vfolder mv data:run1 archive/run1`,
		Action: moveOrCopy("mv", (*client.Client).MoveFile),
	}
}

func vfolderCopyCommand() *cli.Command {
	return &cli.Command{
		Name:      "cp",
		Usage:     "copy a file or directory within a folder (on the storage, without a round trip)",
		ArgsUsage: "FOLDER:FROM TO",
		Description: `Example:
   slurmgate vfolder cp data:config.yaml config.yaml.orig`,
		Action: moveOrCopy("cp", (*client.Client).CopyFile),
	}
}

// --- transfers -------------------------------------------------------------------

// meter shows a transfer's progress: a bar when stderr is a terminal;
// otherwise nothing until the one summary line of done.
type meter struct {
	bar   *progressbar.ProgressBar
	errw  io.Writer
	start time.Time
	from  int64 // bytes that were already there (a resumed transfer)
}

func newMeter(errw io.Writer, size, from int64, desc string) *meter {
	m := &meter{errw: errw, start: time.Now(), from: from}
	if f, ok := errw.(*os.File); ok && isTerminal(f) {
		m.bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(errw), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true), progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionEnableColorCodes(false),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(errw) }))
		m.bar.Set64(from)
	}
	return m
}

// reader counts r's bytes into the bar.
func (m *meter) reader(r io.Reader) io.Reader {
	if m.bar == nil {
		return r
	}
	pr := progressbar.NewReader(r, m.bar)
	return &pr
}

// writer counts bytes written through it into the bar.
func (m *meter) writer(w io.Writer) io.Writer {
	if m.bar == nil {
		return w
	}
	return io.MultiWriter(w, m.bar)
}

func (m *meter) set(n int64) {
	if m.bar != nil {
		m.bar.Set64(n)
	}
}

// done ends the bar and prints the summary line.
func (m *meter) done(total int64, what string) {
	if m.bar != nil {
		m.bar.Finish()
	}
	sent := total - m.from
	line := fmt.Sprintf("%s (%s in %s", what, formatBytes(sent), time.Since(m.start).Round(10*time.Millisecond))
	if m.from > 0 {
		line += fmt.Sprintf(", resumed at %s", formatBytes(m.from))
	}
	fmt.Fprintln(m.errw, line+")")
}

// rateLimited reads at most rate bytes a second from r, in small reads so
// the pace is even (like curl --limit-rate).
type rateLimited struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (l *rateLimited) Read(p []byte) (int, error) {
	if max := max(l.rate/20, 1); int64(len(p)) > max {
		p = p[:max]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if due := time.Duration(float64(l.n) / float64(l.rate) * float64(time.Second)); due > time.Since(l.start) {
		time.Sleep(due - time.Since(l.start))
	}
	return n, err
}

// uploadState is what an interrupted upload leaves behind so that the same
// command can resume it: the tus upload's location (with its capability
// token, hence the 0600 file in a 0700 directory).
type uploadState struct {
	Location  string    `json:"location"`
	ID        string    `json:"id"`
	Folder    string    `json:"folder"`
	Path      string    `json:"path"`
	Length    int64     `json:"length"`
	ExpiresAt time.Time `json:"expires_at"`
}

// uploadStatePath is the state file of one upload of a local file (its
// absolute path, size and modification time) to one destination; a changed
// file gets a new key and so a fresh upload.
func uploadStatePath(endpoint, folderID, dst, local string, st fs.FileInfo) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory for the upload's state: %w (set HOME or XDG_CACHE_HOME)", err)
	}
	h := sha256.New()
	for _, part := range []string{endpoint, folderID, dst, local, strconv.FormatInt(st.Size(), 10), strconv.FormatInt(st.ModTime().UnixNano(), 10)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return filepath.Join(dir, "slurmgate", "uploads", hex.EncodeToString(h.Sum(nil))[:32]+".json"), nil
}

func readUploadState(p string) (uploadState, bool) {
	var s uploadState
	b, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(b, &s) != nil || s.Location == "" || time.Now().After(s.ExpiresAt) {
		return s, false
	}
	return s, true
}

// writeUploadState saves the state before the first byte is sent.
func writeUploadState(p string, s uploadState) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p) // CreateTemp made it 0600
}

// uploader sends local files to one folder.
type uploader struct {
	c        *client.Client
	endpoint string
	folder   client.VFolder
	rate     int64
	errw     io.Writer
}

// upload sends one local file to dst, resuming an earlier interrupted run.
func (u *uploader) upload(ctx context.Context, local, dst string) (client.FileEntry, error) {
	f, err := os.Open(local)
	if err != nil {
		return client.FileEntry{}, &cliError{code: exitUsage, msg: err.Error()}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return client.FileEntry{}, err
	}
	abs, _ := filepath.Abs(local)
	statePath, err := uploadStatePath(u.endpoint, u.folder.ID, dst, abs, st)
	if err != nil {
		return client.FileEntry{}, err
	}
	size := st.Size()
	up := client.Upload{}
	offset := int64(0)
	if s, ok := readUploadState(statePath); ok {
		up = client.Upload{ID: s.ID, Path: s.Path, Length: s.Length, ExpiresAt: s.ExpiresAt, Location: s.Location}
		if offset, err = u.c.UploadOffset(ctx, up); err != nil {
			up, offset = client.Upload{}, 0 // finished, expired or abandoned: start again
		}
	}
	if up.Location == "" {
		if up, err = u.c.CreateUpload(ctx, u.folder.ID, dst, size); err != nil {
			return client.FileEntry{}, err
		}
		offset = up.Offset
		if err := writeUploadState(statePath, uploadState{Location: up.Location, ID: up.ID, Folder: u.folder.ID, Path: dst, Length: size, ExpiresAt: up.ExpiresAt}); err != nil {
			return client.FileEntry{}, fmt.Errorf("saving the upload's state (to resume it later) in %s: %w", statePath, err)
		}
	}
	target := u.folder.Name + ":" + dst
	m := newMeter(u.errw, size, offset, local+" → "+target)
	if offset > 0 && m.bar == nil {
		fmt.Fprintf(u.errw, "resuming %s at %s of %s\n", local, formatBytes(offset), formatBytes(size))
	}
	failures := 0
	for offset < size {
		n := min(client.UploadChunk, size-offset)
		var r io.Reader = io.NewSectionReader(f, offset, n)
		if u.rate > 0 {
			r = &rateLimited{r: r, rate: u.rate, start: time.Now()}
		}
		next, err := u.c.AppendUpload(ctx, up, offset, m.reader(r), n)
		if err == nil {
			offset, failures = next, 0
			continue
		}
		// A chunk that broke off is resumed from what the gateway holds,
		// a few times; a refusal (quota, permission) is final.
		var prob *client.Problem
		if failures++; failures > 3 || ctx.Err() != nil || (errors.As(err, &prob) && prob.Status != http.StatusConflict) {
			return client.FileEntry{}, u.interrupted(err, local, target, offset, size)
		}
		if offset, err = u.c.UploadOffset(ctx, up); err != nil {
			return client.FileEntry{}, u.interrupted(err, local, target, offset, size)
		}
		m.set(offset)
	}
	os.Remove(statePath)
	e, err := u.c.StatFile(ctx, u.folder.ID, dst)
	if err != nil {
		return e, err
	}
	m.done(size, "uploaded "+local+" → "+target)
	return e, nil
}

// interrupted explains a failed upload and how to resume it.
func (u *uploader) interrupted(err error, local, target string, offset, size int64) error {
	var prob *client.Problem
	if errors.As(err, &prob) {
		return err // a refusal: vfError explains it
	}
	code := exitError
	if errors.Is(err, context.Canceled) {
		code = exitSignal
	}
	return &cliError{code: code, msg: fmt.Sprintf("upload of %s to %s stopped at %s of %s: %v", local, target, formatBytes(offset), formatBytes(size), err),
		hint: "run the same command again to send the rest; the gateway keeps what it received for a day"}
}

func vfolderUploadCommand() *cli.Command {
	return &cli.Command{
		Name:      "upload",
		Usage:     "upload files (resumable) into a folder",
		ArgsUsage: "LOCAL... FOLDER[:PATH]",
		Description: `Uploads local files to FOLDER:PATH. With several files, or when PATH is an
existing directory or ends in /, they go into that directory under their own
names. --recursive uploads directories with their contents.

An interrupted upload (Ctrl-C, a dropped connection) resumes when you run the
same command again: the CLI keeps the upload's URL in
~/.cache/slurmgate/uploads/ and asks the gateway how much it already has.

Examples:
   slurmgate vfolder upload model.pt data:
   slurmgate vfolder upload a.csv b.csv data:inputs/
   slurmgate vfolder upload -r results data:runs/
   slurmgate vfolder upload --limit-rate 10M huge.tar data:`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "upload directories and their contents"},
			&cli.StringFlag{Name: "limit-rate", Usage: "send at most `RATE` bytes a second, e.g. 10M"},
			jsonFlag,
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() < 2 {
				return usageErrorf("vfolder upload takes LOCAL... FOLDER[:PATH]")
			}
			argv := cmd.Args().Slice()
			locals, ref := argv[:len(argv)-1], argv[len(argv)-1]
			var rate int64
			if v := cmd.String("limit-rate"); v != "" {
				n, err := parseBytes(v)
				if err != nil || n <= 0 {
					return usageErrorf("--limit-rate %q: want bytes a second, e.g. 500K or 10M", v)
				}
				rate = n
			}
			for _, l := range locals {
				st, err := os.Stat(l)
				if err != nil {
					return &cliError{code: exitUsage, msg: err.Error()}
				}
				if st.IsDir() && !cmd.Bool("recursive") {
					return usageErrorf("%s is a directory; add --recursive to upload it with its contents", l)
				}
			}
			c, cfg, err := apiClient()
			if err != nil {
				return err
			}
			name, dst, _ := splitRef(ref)
			v, err := resolveFolder(ctx, c, name)
			if err != nil {
				return vfError(err, cfg.Endpoint)
			}
			u := &uploader{c: c, endpoint: cfg.Endpoint, folder: v, rate: rate, errw: cmd.Root().ErrWriter}
			entries, err := u.uploadAll(ctx, locals, dst)
			if err != nil {
				return vfError(err, cfg.Endpoint)
			}
			if cmd.Bool("json") {
				return printJSON(cmd, nonNilSlice(entries))
			}
			return nil
		},
	}
}

// uploadAll uploads locals to dst: into it when it is a directory (or
// there are several, or it ends in /), else as it.
func (u *uploader) uploadAll(ctx context.Context, locals []string, dst string) ([]client.FileEntry, error) {
	into := dst == "" || strings.HasSuffix(dst, "/") || len(locals) > 1
	if !into {
		e, err := u.c.StatFile(ctx, u.folder.ID, dst)
		into = err == nil && e.Type == "dir"
	}
	var out []client.FileEntry
	for _, l := range locals {
		target := dst
		if into {
			target = path.Join(dst, filepath.Base(l))
		}
		st, err := os.Stat(l)
		if err != nil {
			return out, &cliError{code: exitUsage, msg: err.Error()}
		}
		if !st.IsDir() {
			e, err := u.upload(ctx, l, target)
			if err != nil {
				return out, err
			}
			out = append(out, e)
			continue
		}
		err = filepath.WalkDir(l, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(l, p)
			remote := path.Join(target, filepath.ToSlash(rel))
			switch {
			case d.IsDir():
				return u.mkdirAll(ctx, remote)
			case d.Type().IsRegular():
				e, err := u.upload(ctx, p, remote)
				out = append(out, e)
				return err
			}
			fmt.Fprintf(u.errw, "skipping %s: not a regular file\n", p)
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// mkdirAll makes a directory and its parents; one that exists is fine.
func (u *uploader) mkdirAll(ctx context.Context, p string) error {
	_, err := u.c.Mkdir(ctx, u.folder.ID, p, true)
	var prob *client.Problem
	if errors.As(err, &prob) && prob.Status == http.StatusConflict {
		if e, serr := u.c.StatFile(ctx, u.folder.ID, p); serr == nil && e.Type == "dir" {
			return nil
		}
	}
	return err
}

func vfolderDownloadCommand() *cli.Command {
	return &cli.Command{
		Name:      "download",
		Usage:     "download a file, or a directory as a zip",
		ArgsUsage: "FOLDER:PATH [LOCAL]",
		Description: `LOCAL defaults to the file's name (a directory's name plus .zip) in the
current directory; - writes to standard output. An existing LOCAL is not
overwritten without --force; --resume continues a partial download from where
it stopped (files only: a zip is made as it streams).

Examples:
   slurmgate vfolder download data:runs/results.tar
   slurmgate vfolder download --resume data:huge.tar /scratch/huge.tar
   slurmgate vfolder download data:runs runs.zip`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "resume", Aliases: []string{"c"}, Usage: "continue a partial download into an existing LOCAL"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite an existing LOCAL"},
		},
		Action: withVFClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if cmd.NArg() < 1 || cmd.NArg() > 2 {
				return usageErrorf("vfolder download takes FOLDER:PATH and an optional LOCAL")
			}
			v, p, err := folderAndPath(ctx, c, cmd.Args().First())
			if err != nil {
				return err
			}
			e, err := c.StatFile(ctx, v.ID, p)
			if err != nil {
				return err
			}
			isDir := e.Type == "dir"
			if !isDir && e.Type != "file" {
				return usageErrorf("%s:%s is a %s; only files and directories can be downloaded", v.Name, p, e.Type)
			}
			name := e.Name
			if name == "" {
				name = v.Name // the folder's top
			}
			if isDir {
				name += ".zip"
			}
			local := cmd.Args().Get(1)
			if local == "" {
				local = name
			} else if st, err := os.Stat(local); err == nil && st.IsDir() {
				local = filepath.Join(local, name)
			}
			if isDir && cmd.Bool("resume") {
				return usageErrorf("--resume continues files only: a directory's zip is made as it streams; download it again")
			}
			return download(ctx, cmd, c, v, p, e, local)
		}),
	}
}

func download(ctx context.Context, cmd *cli.Command, c *client.Client, v client.VFolder, p string, e client.FileEntry, local string) error {
	errw := cmd.Root().ErrWriter
	if local == "-" {
		rc, err := c.Download(ctx, v.ID, p, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(cmd.Root().Writer, rc)
		return err
	}
	var from int64
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if st, err := os.Stat(local); err == nil {
		switch {
		case !st.Mode().IsRegular():
			return usageErrorf("%s exists and is not a regular file", local)
		case cmd.Bool("resume"):
			from, flags = st.Size(), os.O_WRONLY|os.O_APPEND
			if from > e.Size {
				return usageErrorf("%s (%s) is larger than %s:%s (%s): it is not a part of it; download without --resume", local, formatBytes(from), v.Name, p, formatBytes(e.Size))
			}
			if from == e.Size {
				fmt.Fprintf(errw, "%s is complete (%s)\n", local, formatBytes(from))
				return nil
			}
		case cmd.Bool("force"):
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		default:
			return usageErrorf("%s exists; --resume continues a partial download, --force overwrites it", local)
		}
	}
	f, err := os.OpenFile(local, flags, 0o644)
	if err != nil {
		return &cliError{code: exitUsage, msg: err.Error()}
	}
	// A resumed download asks again for the last bytes it has and compares
	// them: a file that changed on the gateway since is refused rather than
	// spliced onto the old part.
	overlap := min(from, resumeOverlap)
	rc, err := c.Download(ctx, v.ID, p, from-overlap)
	if err != nil {
		f.Close()
		if from == 0 {
			os.Remove(local)
		}
		return err
	}
	defer rc.Close()
	if overlap > 0 {
		if err := sameTail(local, from, overlap, rc); err != nil {
			f.Close()
			return &cliError{code: exitError, msg: fmt.Sprintf("%s does not end as %s:%s does at byte %d: %v", local, v.Name, p, from, err),
				hint: "the file changed on the gateway, or LOCAL is another file; download it again with --force"}
		}
	}
	size := e.Size
	if e.Type == "dir" {
		size = -1 // a zip's size is known when it ends
	}
	m := newMeter(errw, size, from, v.Name+":"+p+" → "+local)
	n, err := io.Copy(m.writer(f), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return &cliError{code: exitSignal, msg: fmt.Sprintf("download stopped at %s", formatBytes(from+n)), hint: "continue it with --resume"}
		}
		return &cliError{code: exitError, msg: fmt.Sprintf("downloading %s:%s: %v (%s written to %s)", v.Name, p, err, formatBytes(from+n), local),
			hint: "continue it with --resume"}
	}
	if e.Type == "file" && from+n != e.Size {
		return &cliError{code: exitError, msg: fmt.Sprintf("%s:%s changed while downloading: %s received, %s expected", v.Name, p, formatBytes(from+n), formatBytes(e.Size)),
			hint: "download it again with --force"}
	}
	m.done(from+n, "downloaded "+v.Name+":"+p+" → "+local)
	return nil
}

// resumeOverlap is how much of a partial download a resume fetches again
// to check that it continues the same file.
const resumeOverlap = 64 << 10

// sameTail checks that the n bytes of local ending at end are what r
// starts with.
func sameTail(local string, end, n int64, r io.Reader) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	have := make([]byte, n)
	if _, err := f.ReadAt(have, end-n); err != nil {
		return err
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil {
		return err
	}
	if !bytes.Equal(have, got) {
		return errors.New("the bytes differ")
	}
	return nil
}

// --- sizes -----------------------------------------------------------------------

// formatBytes writes a size in binary units, as ls -h does.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// parseBytes reads a size such as 512, 500K, 10M, 1.5G or 2T (binary units;
// a trailing B or iB is allowed).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if i := strings.IndexAny(t, "KMGTP"); i >= 0 && i == len(t)-1 {
		mult = int64(1) << (10 * (strings.IndexByte("KMGTP", t[i]) + 1))
		t = t[:i]
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("want a size such as 512, 500K, 10M or 1.5G")
	}
	return int64(f * float64(mult)), nil
}

// nonNilSlice makes an empty list print as [] in JSON.
func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
