package apptainer

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Image labels are how an image tells Slurmgate what it offers. They are
// ordinary Apptainer labels (%labels in a definition file; read from the SIF's
// metadata or /.singularity.d/labels.json), all under one prefix, and this
// file is the one place that defines them:
//
//	org.slurmgate.service.NAME=PROTOCOL:PORT
//	    The image runs service NAME (jupyter, tensorboard, vscode, …) speaking
//	    PROTOCOL (http or tcp) on 127.0.0.1:PORT by default.
//	    Example: org.slurmgate.service.jupyter=http:8888
//	org.slurmgate.service.NAME.command=TEMPLATE
//	    How the agent starts the service: a command line split on spaces (no
//	    shell), in which these placeholders are replaced:
//	      {port}     the TCP port to listen on (127.0.0.1 only)
//	      {socket}   a Unix socket path in a private 0700 directory
//	      {base_url} the proxy prefix, /s/SESSION/NAME/
//	    Using {base_url} declares that the service accepts a base URL; using
//	    {socket} declares that it can listen on a Unix socket, which the agent
//	    then prefers. A service without {base_url} is served at "/" (the
//	    agent strips the proxy prefix). Without a command the service is
//	    only reachable if the session's own command starts it.
//	    Example: org.slurmgate.service.jupyter.command=jupyter-notebook
//	      --no-browser --sock={socket} --NotebookApp.base_url={base_url}
//	      --NotebookApp.allow_remote_access=True
//	    (allow_remote_access: Jupyter otherwise refuses requests whose Host is
//	    the gateway's public name rather than a local one; the gateway and
//	    the token already decide who gets in.)
//	    A command never holds a secret: every user of the node can read a
//	    process's command line (/proc/PID/cmdline). The placeholder {token},
//	    which once put the service's token there, is refused with this fix:
//	    remove it and declare the service's auth (below).
//	org.slurmgate.service.NAME.auth=token|bearer
//	    The service demands a per-service secret that only the agent and the
//	    service know, so that other users of the node cannot use its
//	    127.0.0.1 port. The agent makes one per start and passes it in the
//	    service's environment, which only the same user and root can read:
//	    SLURMGATE_SERVICE_TOKEN, and JUPYTER_TOKEN, which Jupyter reads. The
//	    proxy presents it for the user on every request as
//	    "Authorization: token SECRET" (token: Jupyter's header) or
//	    "Authorization: Bearer SECRET" (bearer); the browser never holds it.
//	    Example: org.slurmgate.service.jupyter.auth=token
//	org.slurmgate.min.cpus=N, org.slurmgate.min.memory=SIZE (512M, 4G, bytes
//	without a unit), org.slurmgate.min.gpus=N
//	    The least a session of this image should ask for.
//	org.slurmgate.runtimes=apptainer,charliecloud
//	    The runtimes the image is known to work with, in order of preference.
//
// Any other key under org.slurmgate. is an error, so a typo is reported when
// the image is added to the catalogue instead of silently ignored. Keys
// outside the prefix are left alone.
const (
	LabelPrefix   = "org.slurmgate."
	LabelService  = LabelPrefix + "service." // + NAME, + NAME + ".command"
	LabelMinCPUs  = LabelPrefix + "min.cpus"
	LabelMinMem   = LabelPrefix + "min.memory"
	LabelMinGPUs  = LabelPrefix + "min.gpus"
	LabelRuntimes = LabelPrefix + "runtimes"

	commandSuffix = ".command"
	authSuffix    = ".auth"
)

// ImageInfo is what an image's labels say about it.
type ImageInfo struct {
	Services    []Service `json:"services"`
	MinCPUs     int       `json:"min_cpus,omitempty"`
	MinMemoryMB int64     `json:"min_memory_mb,omitempty"`
	MinGPUs     int       `json:"min_gpus,omitempty"`
	// Runtimes the image works with, most preferred first; empty: any.
	Runtimes []string `json:"runtimes,omitempty"`
}

// Service is an application inside the image that the app proxy can reach.
type Service struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"` // http or tcp
	Port     int    `json:"port"`
	// Command is the start template (see the label documentation above);
	// empty when the session's command starts the service itself.
	Command string `json:"command,omitempty"`
	// BaseURL: the service serves under the proxy prefix; otherwise the
	// proxy must give it a host of its own or strip the prefix.
	BaseURL bool `json:"base_url"`
	// Socket: the service can listen on a Unix socket.
	Socket bool `json:"socket"`
	// Auth is how the proxy presents the service's token: "token",
	// "bearer", or empty when the service takes none (see the label
	// documentation above).
	Auth string `json:"auth,omitempty"`
}

// AuthHeader is the header the proxy adds to each request to the service,
// as a template of the agent's configuration ("Authorization: token
// {token}"; the agent fills in {token}), or "" when the service takes no
// token.
func (s Service) AuthHeader() string {
	switch s.Auth {
	case "token":
		return "Authorization: token {token}"
	case "bearer":
		return "Authorization: Bearer {token}"
	}
	return ""
}

// ServiceVars fill a service's command template. The service's token is
// not among them: a command line is no place for a secret.
type ServiceVars struct {
	Port    int
	Socket  string
	BaseURL string
}

// Argv renders the service's start command. Placeholders are replaced inside
// words, after splitting, so a value can never add or split arguments.
func (s Service) Argv(v ServiceVars) ([]string, error) {
	words := strings.Fields(s.Command)
	if len(words) == 0 {
		return nil, fmt.Errorf("service %s has no start command (label %s%s%s)", s.Name, LabelService, s.Name, commandSuffix)
	}
	if strings.Contains(s.Command, tokenPlaceholder) {
		return nil, TokenInCommandError(s.Name)
	}
	r := strings.NewReplacer("{port}", strconv.Itoa(v.Port), "{socket}", v.Socket, "{base_url}", v.BaseURL)
	for i, w := range words {
		words[i] = r.Replace(w)
	}
	return words, nil
}

var (
	serviceName  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	placeholder  = regexp.MustCompile(`\{[a-z_]*\}`)
	placeholders = map[string]bool{"{port}": true, "{socket}": true, "{base_url}": true}
)

const tokenPlaceholder = "{token}"

// TokenInCommandError is the refusal of a service whose start command holds
// {token}, with the fix. The agent refuses such a service too, for images
// catalogued before the placeholder was withdrawn.
func TokenInCommandError(service string) error {
	return fmt.Errorf("service %s: label %s%s%s puts the service's token on its command line, where every user of the node can read it: "+
		"remove {token} from it and declare %s%s%s=token (the agent passes the token in the environment as SLURMGATE_SERVICE_TOKEN and JUPYTER_TOKEN)",
		service, LabelService, service, commandSuffix, LabelService, service, authSuffix)
}

// ParseLabels reads Slurmgate's labels (above) out of an image's labels. The
// error names every bad label, each with what was expected.
func ParseLabels(labels map[string]string) (ImageInfo, error) {
	var info ImageInfo
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("label %s=%q: %s", key, labels[key], fmt.Sprintf(format, args...)))
	}
	services := map[string]*Service{}
	commands := map[string]string{}
	auths := map[string]string{}
	for _, key := range slices.Sorted(maps.Keys(labels)) {
		if !strings.HasPrefix(key, LabelPrefix) {
			continue
		}
		val := strings.TrimSpace(labels[key])
		switch {
		case key == LabelMinCPUs:
			info.MinCPUs = parseCount(val, func(msg string) { bad(key, "%s", msg) })
		case key == LabelMinGPUs:
			info.MinGPUs = parseCount(val, func(msg string) { bad(key, "%s", msg) })
		case key == LabelMinMem:
			mb, err := parseMemoryMB(val)
			if err != nil {
				bad(key, "%v", err)
			}
			info.MinMemoryMB = mb
		case key == LabelRuntimes:
			for _, r := range strings.Split(val, ",") {
				r = strings.TrimSpace(r)
				if _, known := registry[r]; !known {
					bad(key, "runtime %q is not one of %s", r, strings.Join(slices.Sorted(maps.Keys(registry)), ", "))
					continue
				}
				info.Runtimes = append(info.Runtimes, r)
			}
		case strings.HasPrefix(key, LabelService):
			rest := strings.TrimPrefix(key, LabelService)
			if name, ok := strings.CutSuffix(rest, commandSuffix); ok {
				if !serviceName.MatchString(name) {
					bad(key, "service name %q: lower-case letters, digits and '-', starting with a letter", name)
					continue
				}
				for _, p := range placeholder.FindAllString(val, -1) {
					switch {
					case p == tokenPlaceholder:
						bad(key, "%v", TokenInCommandError(name))
					case !placeholders[p]:
						bad(key, "unknown placeholder %s; want {port}, {socket} or {base_url}", p)
					}
				}
				commands[name] = val
				continue
			}
			if name, ok := strings.CutSuffix(rest, authSuffix); ok {
				if !serviceName.MatchString(name) {
					bad(key, "service name %q: lower-case letters, digits and '-', starting with a letter", name)
					continue
				}
				if val != "token" && val != "bearer" {
					bad(key, "want token (Authorization: token SECRET, Jupyter's header) or bearer (Authorization: Bearer SECRET)")
					continue
				}
				auths[name] = val
				continue
			}
			if !serviceName.MatchString(rest) {
				bad(key, "service name %q: lower-case letters, digits and '-', starting with a letter", rest)
				continue
			}
			s, err := parseService(rest, val)
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			services[rest] = &s
		default:
			bad(key, "not a Slurmgate label; known: %s%s", LabelService, "NAME[.command|.auth], min.cpus, min.memory, min.gpus, runtimes")
		}
	}
	// A service's .command and .auth labels need the service's own.
	declared := func(name, suffix string) *Service {
		s := services[name]
		if s == nil {
			bad(LabelService+name+suffix, "no label %s%s=PROTOCOL:PORT declares service %s", LabelService, name, name)
		}
		return s
	}
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		if s := declared(name, commandSuffix); s != nil {
			s.Command = commands[name]
			s.BaseURL = strings.Contains(s.Command, "{base_url}")
			s.Socket = strings.Contains(s.Command, "{socket}")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(auths)) {
		if s := declared(name, authSuffix); s != nil {
			s.Auth = auths[name]
		}
	}
	info.Services = []Service{}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		info.Services = append(info.Services, *services[name])
	}
	if len(errs) > 0 {
		return info, fmt.Errorf("image labels: %s", strings.Join(errs, "; "))
	}
	return info, nil
}

// parseService reads "PROTOCOL:PORT".
func parseService(name, val string) (Service, error) {
	proto, port, ok := strings.Cut(val, ":")
	if !ok {
		return Service{}, fmt.Errorf("want PROTOCOL:PORT, e.g. http:8888")
	}
	if proto != "http" && proto != "tcp" {
		return Service{}, fmt.Errorf("protocol %q: want http or tcp", proto)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Service{}, fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return Service{Name: name, Protocol: proto, Port: n}, nil
}

func parseCount(val string, bad func(string)) int {
	n, err := strconv.Atoi(val)
	if err != nil || n < 0 {
		bad("want a whole number, 0 or more")
		return 0
	}
	return n
}

// parseMemoryMB reads "512M", "4G", "1T" (binary units) or plain bytes.
func parseMemoryMB(val string) (int64, error) {
	units := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(val), "B")
	if num != "" {
		if u, ok := units[num[len(num)-1]]; ok {
			mult, num = u, num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a size such as 512M or 4G")
	}
	return (n*mult + (1<<20 - 1)) >> 20, nil
}
