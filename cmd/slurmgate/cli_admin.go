package main

// admin domain|project|user|member|policy|image|scaling-group|preset: the
// administrators' commands that go through the REST API with the caller's
// own keypair (unlike admin bootstrap and sync, which run on the gateway
// host against its database). The gateway checks every role.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// addAdminRESTCommands appends the REST-based admin commands to the tree's
// admin command.
func addAdminRESTCommands(app *cli.Command) {
	for _, c := range app.Commands {
		if c.Name == "admin" {
			c.Commands = append(c.Commands, adminDomainCommand(), adminProjectCommand(), adminUserCommand(),
				adminMemberCommand(), adminPolicyCommand(), adminImageCommand(), adminScalingGroupCommand(), adminPresetCommand())
		}
	}
}

// withClient runs fn with an API client and turns its errors into CLI ones.
func withClient(fn func(ctx context.Context, cmd *cli.Command, c *client.Client) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		c, cfg, err := apiClient()
		if err != nil {
			return err
		}
		return apiError(fn(ctx, cmd, c), cfg.Endpoint)
	}
}

// args checks the number of arguments.
func args(cmd *cli.Command, n int) error {
	if cmd.NArg() != n {
		return usageErrorf("%s takes %d argument(s): %s", cmd.FullName(), n, cmd.ArgsUsage)
	}
	return nil
}

// printOne prints a created or changed object: JSON with --json, else one
// line that names it.
func printOne(cmd *cli.Command, v any, line string) error {
	if cmd.Bool("json") {
		return printJSON(cmd, v)
	}
	_, err := fmt.Fprintln(cmd.Root().Writer, line)
	return err
}

// optString is a flag's value when it was given, else nil (no change).
func optString(cmd *cli.Command, name string) *string {
	if !cmd.IsSet(name) {
		return nil
	}
	v := cmd.String(name)
	return &v
}

func optInt(cmd *cli.Command, name string) *int {
	if !cmd.IsSet(name) {
		return nil
	}
	v := cmd.Int(name)
	return &v
}

// gidFlag sets a project's POSIX group.
func gidFlag() cli.Flag {
	return &cli.IntFlag{Name: "gid", Usage: "the project's POSIX group `GID` (an existing group; its folders belong to it)"}
}

// formatGID shows an unset group as "-".
func formatGID(gid *int) string {
	if gid == nil {
		return "-"
	}
	return strconv.Itoa(*gid)
}

func optBool(cmd *cli.Command, name string) *bool {
	if !cmd.IsSet(name) {
		return nil
	}
	v := cmd.Bool(name)
	return &v
}

func adminDomainCommand() *cli.Command {
	return &cli.Command{
		Name:  "domain",
		Usage: "list, create and change domains (through the REST API)",
		Description: `Examples:
   slurmgate admin domain ls
   slurmgate admin domain create acme --description "ACME Corp."
   slurmgate admin domain update acme --active=false`,
		Commands: []*cli.Command{
			{Name: "ls", Usage: "list domains", Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return listAndPrint(ctx, cmd, (*client.Client).Domains, []string{"ID", "DOMAIN", "ACTIVE", "DESCRIPTION"},
						func(d client.Domain) []string {
							return []string{fmt.Sprint(d.ID), d.Name, strconv.FormatBool(d.Active), d.Description}
						})
				}},
			{Name: "create", Usage: "create a domain (superadmins)", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "description"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					d, err := c.CreateDomain(ctx, cmd.Args().First(), cmd.String("description"))
					if err != nil {
						return err
					}
					return printOne(cmd, d, fmt.Sprintf("domain %s created (id %d)", d.Name, d.ID))
				})},
			{Name: "update", Usage: "change a domain's description or deactivate it", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "description"}, &cli.BoolFlag{Name: "active"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					d, err := c.UpdateDomain(ctx, cmd.Args().First(), client.OrgUpdate{Description: optString(cmd, "description"), Active: optBool(cmd, "active")})
					if err != nil {
						return err
					}
					return printOne(cmd, d, fmt.Sprintf("domain %s updated", d.Name))
				})},
		},
	}
}

// findProject resolves a project given as "domain/project" (or its Slurm
// account "domain.project") or as its numeric id.
func findProject(ctx context.Context, c *client.Client, ref string) (*client.Project, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return c.Project(ctx, id)
	}
	path := projectPath(ref)
	ps, err := c.Projects(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Domain+"/"+p.Name == path {
			return &p, nil
		}
	}
	return nil, &cliError{code: exitNotFound, msg: fmt.Sprintf("no project %q that you can see", ref), hint: "list them with `slurmgate admin project ls`"}
}

// findUser resolves a user given by name or numeric id.
// memberArgs resolves a member command's PROJECT USER arguments.
func memberArgs(ctx context.Context, c *client.Client, cmd *cli.Command) (*client.Project, *client.User, error) {
	if err := args(cmd, 2); err != nil {
		return nil, nil, err
	}
	p, err := findProject(ctx, c, cmd.Args().Get(0))
	if err != nil {
		return nil, nil, err
	}
	u, err := findUser(ctx, c, cmd.Args().Get(1))
	return p, u, err
}

func findUser(ctx context.Context, c *client.Client, ref string) (*client.User, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return c.User(ctx, id)
	}
	us, err := c.Users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range us {
		if u.Username == ref {
			return &u, nil
		}
	}
	return nil, &cliError{code: exitNotFound, msg: fmt.Sprintf("no user %q that you can see", ref), hint: "list them with `slurmgate admin user ls`"}
}

func adminProjectCommand() *cli.Command {
	return &cli.Command{
		Name:  "project",
		Usage: "list, create and change projects (through the REST API)",
		Description: `Examples:
   slurmgate admin project ls
   slurmgate admin project create acme/vision --description "vision group" --gid 5001
   slurmgate admin project update acme/vision --gid 5001
   slurmgate admin project update acme/vision --active=false

--gid is the project's POSIX group (an existing, non-system group, as
` + "`getent group GID`" + ` shows on the gateway host): its folders belong to it, mode 2770,
so its members' jobs share them. A project needs one before it can have folders.`,
		Commands: []*cli.Command{
			{Name: "ls", Usage: "list projects", Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return listAndPrint(ctx, cmd, (*client.Client).Projects, []string{"ID", "PROJECT", "ACTIVE", "GID", "DESCRIPTION"},
						func(p client.Project) []string {
							return []string{fmt.Sprint(p.ID), p.Domain + "/" + p.Name, strconv.FormatBool(p.Active), formatGID(p.GID), p.Description}
						})
				}},
			{Name: "create", Usage: "create a project in a domain", ArgsUsage: "DOMAIN/NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "description"}, gidFlag(), jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					domain, name, ok := strings.Cut(projectPath(cmd.Args().First()), "/")
					if !ok {
						return usageErrorf("project %q: want DOMAIN/NAME", cmd.Args().First())
					}
					p, err := c.CreateProjectFrom(ctx, client.NewProject{Domain: domain, Name: name,
						Description: cmd.String("description"), GID: optInt(cmd, "gid")})
					if err != nil {
						return err
					}
					return printOne(cmd, p, fmt.Sprintf("project %s/%s created (id %d)", p.Domain, p.Name, p.ID))
				})},
			{Name: "update", Usage: "change a project's description or deactivate it", ArgsUsage: "DOMAIN/NAME|ID",
				Flags: []cli.Flag{&cli.StringFlag{Name: "description"}, &cli.BoolFlag{Name: "active"}, gidFlag(), jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					p, err := findProject(ctx, c, cmd.Args().First())
					if err != nil {
						return err
					}
					p, err = c.PatchProject(ctx, p.ID, client.ProjectUpdate{Description: optString(cmd, "description"),
						Active: optBool(cmd, "active"), GID: optInt(cmd, "gid")})
					if err != nil {
						return err
					}
					return printOne(cmd, p, fmt.Sprintf("project %s/%s updated", p.Domain, p.Name))
				})},
		},
	}
}

func adminUserCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "list, create and change users (through the REST API)",
		Description: `Examples:
   slurmgate admin user ls
   slurmgate admin user create alice --uid 2001 --domain acme --email alice@example.org
   slurmgate admin user update alice --status inactive`,
		Commands: []*cli.Command{
			{Name: "ls", Usage: "list users", Flags: []cli.Flag{jsonFlag},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return listAndPrint(ctx, cmd, (*client.Client).Users, []string{"ID", "USER", "UID", "DOMAIN", "ROLE", "STATUS", "EMAIL"},
						func(u client.User) []string {
							return []string{fmt.Sprint(u.ID), u.Username, fmt.Sprint(u.UID), u.Domain, u.Role, u.Status, orDash(u.Email)}
						})
				}},
			{Name: "create", Usage: "create a user (their POSIX account must exist on the cluster)", ArgsUsage: "USERNAME",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "uid", Required: true, Usage: "their POSIX `UID`"},
					&cli.StringFlag{Name: "domain", Required: true},
					&cli.StringFlag{Name: "email"}, &cli.StringFlag{Name: "full-name"},
					&cli.StringFlag{Name: "role", Usage: "user (default), domain-admin or superadmin"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					u, err := c.CreateUser(ctx, client.NewUser{Username: cmd.Args().First(), UID: cmd.Int("uid"), Domain: cmd.String("domain"),
						Email: cmd.String("email"), FullName: cmd.String("full-name"), Role: cmd.String("role")})
					if err != nil {
						return err
					}
					return printOne(cmd, u, fmt.Sprintf("user %s created (id %d)", u.Username, u.ID))
				})},
			{Name: "update", Usage: "change a user", ArgsUsage: "USER",
				Flags: []cli.Flag{&cli.StringFlag{Name: "email"}, &cli.StringFlag{Name: "full-name"},
					&cli.StringFlag{Name: "status", Usage: "active or inactive"}, &cli.StringFlag{Name: "role"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					u, err := findUser(ctx, c, cmd.Args().First())
					if err != nil {
						return err
					}
					u, err = c.UpdateUser(ctx, u.ID, client.UserUpdate{Email: optString(cmd, "email"), FullName: optString(cmd, "full-name"),
						Status: optString(cmd, "status"), Role: optString(cmd, "role")})
					if err != nil {
						return err
					}
					return printOne(cmd, u, fmt.Sprintf("user %s updated", u.Username))
				})},
		},
	}
}

func adminMemberCommand() *cli.Command {
	return &cli.Command{
		Name:  "member",
		Usage: "list, add and remove project members (through the REST API)",
		Description: `Examples:
   slurmgate admin member ls acme/vision
   slurmgate admin member set acme/vision alice --role project-admin
   slurmgate admin member rm acme/vision alice`,
		Commands: []*cli.Command{
			{Name: "ls", Usage: "list a project's members", ArgsUsage: "PROJECT", Flags: []cli.Flag{jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					p, err := findProject(ctx, c, cmd.Args().First())
					if err != nil {
						return err
					}
					return listAndPrint(ctx, cmd, func(c *client.Client, ctx context.Context) ([]client.Membership, error) { return c.Members(ctx, p.ID) },
						[]string{"USER", "ROLE"}, func(m client.Membership) []string { return []string{m.Username, m.Role} })
				})},
			{Name: "set", Usage: "add a user to a project or change their role", ArgsUsage: "PROJECT USER",
				Flags: []cli.Flag{&cli.StringFlag{Name: "role", Value: "member", Usage: "member or project-admin"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					p, u, err := memberArgs(ctx, c, cmd)
					if err != nil {
						return err
					}
					m, err := c.SetMember(ctx, p.ID, u.ID, cmd.String("role"))
					if err != nil {
						return err
					}
					return printOne(cmd, m, fmt.Sprintf("%s is %s of %s", m.Username, m.Role, m.Project))
				})},
			{Name: "rm", Usage: "remove a user from a project", ArgsUsage: "PROJECT USER",
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					p, u, err := memberArgs(ctx, c, cmd)
					if err != nil {
						return err
					}
					return c.RemoveMember(ctx, p.ID, u.ID)
				})},
		},
	}
}

// policyTarget resolves SCOPE TARGET to the policy's target id: a domain by
// name, a project by path, a user by name (or any of them by id).
func policyTarget(ctx context.Context, c *client.Client, scope, ref string) (int64, error) {
	switch scope {
	case "domain":
		if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
			return id, nil
		}
		d, err := c.Domain(ctx, ref)
		if err != nil {
			return 0, err
		}
		return d.ID, nil
	case "project":
		p, err := findProject(ctx, c, ref)
		if err != nil {
			return 0, err
		}
		return p.ID, nil
	case "user":
		u, err := findUser(ctx, c, ref)
		if err != nil {
			return 0, err
		}
		return u.ID, nil
	}
	return 0, usageErrorf("scope %q: want domain, project or user", scope)
}

func adminPolicyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "show, set and remove resource policies (through the REST API)",
		Description: `A policy limits what the live sessions of a domain, project or user may hold
together. set replaces the whole policy: limits not given are unlimited.

Examples:
   slurmgate admin policy show project acme/vision
   slurmgate admin policy set project acme/vision --max-cpus 64 --max-gpus a100=4 --max-sessions 10
   slurmgate admin policy rm user alice`,
		Commands: []*cli.Command{
			{Name: "show", Usage: "show a policy", ArgsUsage: "SCOPE TARGET", Flags: []cli.Flag{jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 2); err != nil {
						return err
					}
					id, err := policyTarget(ctx, c, cmd.Args().Get(0), cmd.Args().Get(1))
					if err != nil {
						return err
					}
					p, err := c.Policy(ctx, cmd.Args().Get(0), id)
					if err != nil {
						return err
					}
					return printJSON(cmd, p) // a policy is its JSON: every limit by its API name
				})},
			{Name: "set", Usage: "replace a policy", ArgsUsage: "SCOPE TARGET",
				DisableSliceFlagSeparator: true,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "max-cpus"}, &cli.StringFlag{Name: "max-mem", Usage: "`SIZE`, e.g. 256G"},
					&cli.StringSliceFlag{Name: "max-gpus", Usage: "`[TYPE=]N`, repeatable (no type: all GPUs)"},
					&cli.IntFlag{Name: "max-sessions"}, &cli.IntFlag{Name: "max-pending"},
					&cli.StringFlag{Name: "max-lifetime", Usage: "longest session, `LIMIT` as Slurm writes it"},
					&cli.StringSliceFlag{Name: "allow-scaling-group", Usage: "`GROUP` sessions may use (repeatable; default all)"},
					jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 2); err != nil {
						return err
					}
					scope := cmd.Args().Get(0)
					id, err := policyTarget(ctx, c, scope, cmd.Args().Get(1))
					if err != nil {
						return err
					}
					p := client.Policy{Scope: scope, TargetID: id, AllowedScalingGroups: cmd.StringSlice("allow-scaling-group")}
					intp := func(name string) *int {
						if !cmd.IsSet(name) {
							return nil
						}
						v := cmd.Int(name)
						return &v
					}
					p.MaxCPUs, p.MaxConcurrentSessions, p.MaxPendingSessions = intp("max-cpus"), intp("max-sessions"), intp("max-pending")
					if v := cmd.String("max-mem"); v != "" {
						mb, err := slurmctl.ParseMemoryMB(v)
						if err != nil {
							return usageErrorf("--max-mem: %v", err)
						}
						p.MaxMemoryMB = &mb
					}
					if v := cmd.String("max-lifetime"); v != "" {
						d, err := slurmctl.ParseTimeLimit(v)
						if err != nil {
							return usageErrorf("--max-lifetime: %v", err)
						}
						s := int64(d / time.Second)
						p.MaxSessionLifetimeS = &s
					}
					for _, g := range cmd.StringSlice("max-gpus") {
						typ, n, typed := strings.Cut(g, "=")
						if !typed {
							typ, n = "", g
						}
						count, err := strconv.Atoi(n)
						if err != nil || count < 0 {
							return usageErrorf("--max-gpus %q: want [TYPE=]N, e.g. 4 or a100=2", g)
						}
						if p.MaxGPUs == nil {
							p.MaxGPUs = map[string]int{}
						}
						p.MaxGPUs[typ] = count
					}
					out, err := c.SetPolicy(ctx, p)
					if err != nil {
						return err
					}
					return printOne(cmd, out, fmt.Sprintf("%s policy of %s set", scope, cmd.Args().Get(1)))
				})},
			{Name: "rm", Usage: "remove a policy (no limits of its own)", ArgsUsage: "SCOPE TARGET",
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 2); err != nil {
						return err
					}
					id, err := policyTarget(ctx, c, cmd.Args().Get(0), cmd.Args().Get(1))
					if err != nil {
						return err
					}
					return c.DeletePolicy(ctx, cmd.Args().Get(0), id)
				})},
		},
	}
}

func adminImageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "add and remove catalogue images (superadmins, through the REST API)",
		Description: `Examples:
   slurmgate admin image create lab/pytorch:2.3 --location /images/pytorch-2.3.sif --runtime apptainer
   slurmgate admin image rm lab/pytorch:2.3`,
		Commands: []*cli.Command{
			{Name: "create", Usage: "add an image", ArgsUsage: "NAME[:TAG]",
				DisableSliceFlagSeparator: true,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "location", Required: true, Usage: "`PATH` of the image on the nodes"},
					&cli.StringFlag{Name: "runtime", Usage: "apptainer, charliecloud or none (default: the scaling group's)"},
					&cli.StringSliceFlag{Name: "label", Usage: "`KEY=VALUE` (repeatable)"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					name, tag, _ := strings.Cut(cmd.Args().First(), ":")
					img := client.Image{Name: name, Tag: cmp(tag, "latest"), Location: cmd.String("location"), Runtime: cmd.String("runtime")}
					for _, l := range cmd.StringSlice("label") {
						k, v, ok := strings.Cut(l, "=")
						if !ok {
							return usageErrorf("--label %q: want KEY=VALUE", l)
						}
						if img.Labels == nil {
							img.Labels = map[string]string{}
						}
						img.Labels[k] = v
					}
					out, err := c.CreateImage(ctx, img)
					if err != nil {
						return err
					}
					return printOne(cmd, out, fmt.Sprintf("image %s:%s added", out.Name, out.Tag))
				})},
			removeByName("remove an image", "NAME[:TAG]", (*client.Client).DeleteImage),
		},
	}
}

func adminScalingGroupCommand() *cli.Command {
	return &cli.Command{
		Name:  "scaling-group",
		Usage: "register and remove scaling groups (superadmins, through the REST API)",
		Description: `Examples:
   slurmgate admin scaling-group create gpu --partition gpu --gpu-type a100 --runtime apptainer
   slurmgate admin scaling-group rm gpu`,
		Commands: []*cli.Command{
			{Name: "create", Usage: "register partitions as a scaling group", ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "partition", Required: true, Usage: "Slurm `PARTITION` (repeatable)"},
					&cli.StringSliceFlag{Name: "gpu-type", Usage: "GPU `TYPE` offered (repeatable)"},
					&cli.StringFlag{Name: "runtime", Usage: "default container runtime"},
					&cli.StringFlag{Name: "cluster"}, &cli.StringFlag{Name: "description"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					sg, err := c.CreateScalingGroup(ctx, client.ScalingGroup{Name: cmd.Args().First(), Partitions: cmd.StringSlice("partition"),
						GPUTypes: cmd.StringSlice("gpu-type"), Runtime: cmd.String("runtime"), Cluster: cmd.String("cluster"), Description: cmd.String("description")})
					if err != nil {
						return err
					}
					return printOne(cmd, sg, "scaling group "+sg.Name+" created")
				})},
			removeByName("remove a scaling group no session refers to", "NAME", (*client.Client).DeleteScalingGroup),
		},
	}
}

func adminPresetCommand() *cli.Command {
	return &cli.Command{
		Name:  "preset",
		Usage: "add and remove resource presets (superadmins, through the REST API)",
		Description: `Examples:
   slurmgate admin preset create gpu-small --cpus 4 --mem 32G --gpus a100:1 --time 4:00:00
   slurmgate admin preset rm gpu-small`,
		Commands: []*cli.Command{
			{Name: "create", Usage: "add a preset", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.IntFlag{Name: "cpus"}, &cli.StringFlag{Name: "mem"}, &cli.StringFlag{Name: "gpus", Usage: "`[TYPE:]N`"},
					&cli.StringFlag{Name: "time"}, &cli.StringFlag{Name: "description"}, jsonFlag},
				Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
					if err := args(cmd, 1); err != nil {
						return err
					}
					p := client.Preset{Name: cmd.Args().First(), CPUs: cmd.Int("cpus"), Description: cmd.String("description")}
					if v := cmd.String("mem"); v != "" {
						mb, err := slurmctl.ParseMemoryMB(v)
						if err != nil {
							return usageErrorf("--mem: %v", err)
						}
						p.MemoryMB = mb
					}
					if v := cmd.String("gpus"); v != "" {
						typ, n, typed := strings.Cut(v, ":")
						if !typed {
							typ, n = "", v
						}
						count, err := strconv.Atoi(n)
						if err != nil || count < 1 {
							return usageErrorf("--gpus %q: want [TYPE:]N", v)
						}
						p.GPUs, p.GPUType = count, typ
					}
					if v := cmd.String("time"); v != "" {
						d, err := slurmctl.ParseTimeLimit(v)
						if err != nil {
							return usageErrorf("--time: %v", err)
						}
						s := int64(d / time.Second)
						p.TimeLimitS = &s
					}
					out, err := c.CreatePreset(ctx, p)
					if err != nil {
						return err
					}
					return printOne(cmd, out, "preset "+out.Name+" added")
				})},
			removeByName("remove a preset", "NAME", (*client.Client).DeletePreset),
		},
	}
}

// removeByName is an admin "rm" subcommand that deletes one thing named by
// its only argument.
func removeByName(usage, argsUsage string, del func(*client.Client, context.Context, string) error) *cli.Command {
	return &cli.Command{Name: "rm", Usage: usage, ArgsUsage: argsUsage,
		Action: withClient(func(ctx context.Context, cmd *cli.Command, c *client.Client) error {
			if err := args(cmd, 1); err != nil {
				return err
			}
			return del(c, ctx, cmd.Args().First())
		})}
}
