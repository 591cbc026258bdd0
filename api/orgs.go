package api

import (
	"net/http"
	"strconv"

	"github.com/slurmgate/slurmgate/bridge"
)

// orgRoutes: domains, projects and their members, users, and resource
// policies. The routes only require a caller; who may do what (superadmins,
// domain admins, project admins, the user themself) is the domain's
// decision, made in each bridge method, so the rules live in one place.
func (s *Server) orgRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/domains", summary: "Create a domain (superadmins)",
			access: authenticated, handler: s.createDomain, status: http.StatusCreated,
			request: createDomainRequest{}, response: bridge.Domain{}},
		{method: "GET", pattern: "/api/v1/domains", summary: "List the domains the caller may see",
			access: authenticated, handler: s.listDomains, response: page[bridge.Domain]{}},
		{method: "GET", pattern: "/api/v1/domains/{name}", summary: "Get a domain",
			access: authenticated, handler: s.getDomain, response: bridge.Domain{}},
		{method: "PATCH", pattern: "/api/v1/domains/{name}", summary: "Change a domain's description or deactivate it",
			access: authenticated, handler: s.updateDomain, request: orgUpdate{}, response: bridge.Domain{}},

		{method: "POST", pattern: "/api/v1/projects", summary: "Create a project in a domain",
			access: authenticated, handler: s.createProject, status: http.StatusCreated,
			request: bridge.NewProject{}, response: bridge.Project{}},
		{method: "GET", pattern: "/api/v1/projects", summary: "List the projects the caller may see",
			access: authenticated, handler: s.listProjects, response: page[bridge.Project]{}},
		{method: "GET", pattern: "/api/v1/projects/{id}", summary: "Get a project",
			access: authenticated, handler: s.getProject, response: bridge.Project{}},
		{method: "PATCH", pattern: "/api/v1/projects/{id}", summary: "Change a project's description or POSIX group (gid), or deactivate it",
			access: authenticated, handler: s.updateProject, request: bridge.ProjectUpdate{}, response: bridge.Project{}},
		{method: "GET", pattern: "/api/v1/projects/{id}/members", summary: "List a project's members",
			access: authenticated, handler: s.listMembers, response: page[bridge.Membership]{}},
		{method: "PUT", pattern: "/api/v1/projects/{id}/members/{user_id}", summary: "Add a user to a project or change their project role",
			access: authenticated, handler: s.setMember, request: setMemberRequest{}, response: bridge.Membership{}},
		{method: "DELETE", pattern: "/api/v1/projects/{id}/members/{user_id}", summary: "Remove a user from a project",
			access: authenticated, handler: s.removeMember, status: http.StatusNoContent},

		{method: "POST", pattern: "/api/v1/users", summary: "Create a user",
			access: authenticated, handler: s.createUser, status: http.StatusCreated,
			request: bridge.NewUser{}, response: bridge.User{}},
		{method: "GET", pattern: "/api/v1/users", summary: "List the users the caller may see",
			access: authenticated, handler: s.listUsers, response: page[bridge.User]{}},
		{method: "GET", pattern: "/api/v1/users/{id}", summary: "Get a user",
			access: authenticated, handler: s.getUser, response: bridge.User{}},
		{method: "PATCH", pattern: "/api/v1/users/{id}", summary: "Change a user's details, status or role",
			access: authenticated, handler: s.updateUser, request: bridge.UserUpdate{}, response: bridge.User{}},

		{method: "GET", pattern: "/api/v1/policies/{scope}/{id}", summary: "Get the resource policy of a domain, project or user",
			access: authenticated, handler: s.getPolicy, response: bridge.Policy{}},
		{method: "PUT", pattern: "/api/v1/policies/{scope}/{id}", summary: "Set (replace) the resource policy of a domain, project or user",
			access: authenticated, handler: s.setPolicy, request: bridge.Policy{}, response: bridge.Policy{}},
		{method: "DELETE", pattern: "/api/v1/policies/{scope}/{id}", summary: "Remove a resource policy",
			access: authenticated, handler: s.deletePolicy, status: http.StatusNoContent},
	}
}

// allItems answers with a whole (short, unpaginated) list in the page
// shape every list uses, so clients read all lists alike and these can be
// paginated later without a breaking change.
func allItems[T any](w http.ResponseWriter, r *http.Request, items []T, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, r, http.StatusOK, page[T]{Items: items})
}

// answer writes v with status, or the error.
func answer[T any](w http.ResponseWriter, r *http.Request, status int, v T, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, status, v)
}

// pathID reads a positive integer path parameter, answering 400 otherwise.
func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		p := badRequest.with("%s %q: want a positive integer", name, v)
		p.Field = name
		writeProblem(w, r, p)
		return 0, false
	}
	return id, true
}

type createDomainRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// orgUpdate is a PATCH of a domain or project: absent fields stay as they are.
type orgUpdate struct {
	Description *string `json:"description,omitempty"`
	Active      *bool   `json:"active,omitempty"`
}

func (s *Server) createDomain(w http.ResponseWriter, r *http.Request) {
	var in createDomainRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	d, err := s.b.CreateDomain(r.Context(), ActorFrom(r.Context()), in.Name, in.Description)
	answer(w, r, http.StatusCreated, d, err)
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request) {
	ds, err := s.b.Domains(r.Context(), ActorFrom(r.Context()))
	allItems(w, r, ds, err)
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request) {
	d, err := s.b.DomainByName(r.Context(), ActorFrom(r.Context()), r.PathValue("name"))
	answer(w, r, http.StatusOK, d, err)
}

func (s *Server) updateDomain(w http.ResponseWriter, r *http.Request) {
	var in orgUpdate
	if !decodeJSON(w, r, &in) {
		return
	}
	d, err := s.b.UpdateDomain(r.Context(), ActorFrom(r.Context()), r.PathValue("name"), in.Description, in.Active)
	answer(w, r, http.StatusOK, d, err)
}

// createProject creates a project; an optional gid gives it its POSIX
// group in the same step, so a bad gid leaves no project behind.
func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	var in bridge.NewProject
	if !decodeJSON(w, r, &in) {
		return
	}
	p, err := s.b.CreateProjectFrom(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusCreated, p, err)
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	ps, err := s.b.Projects(r.Context(), ActorFrom(r.Context()))
	allItems(w, r, ps, err)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	p, err := s.b.Project(r.Context(), ActorFrom(r.Context()), id)
	answer(w, r, http.StatusOK, p, err)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in bridge.ProjectUpdate
	if !decodeJSON(w, r, &in) {
		return
	}
	p, err := s.b.UpdateProject(r.Context(), ActorFrom(r.Context()), id, in)
	answer(w, r, http.StatusOK, p, err)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	ms, err := s.b.Members(r.Context(), ActorFrom(r.Context()), id)
	allItems(w, r, ms, err)
}

type setMemberRequest struct {
	// Role is "member" (the default) or "project-admin".
	Role string `json:"role,omitempty"`
}

func (s *Server) setMember(w http.ResponseWriter, r *http.Request) {
	pid, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	uid, ok := pathID(w, r, "user_id")
	if !ok {
		return
	}
	var in setMemberRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	m, err := s.b.SetMembership(r.Context(), ActorFrom(r.Context()), pid, uid, in.Role)
	answer(w, r, http.StatusOK, m, err)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	pid, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	uid, ok := pathID(w, r, "user_id")
	if !ok {
		return
	}
	if err := s.b.RemoveMembership(r.Context(), ActorFrom(r.Context()), pid, uid); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in bridge.NewUser
	if !decodeJSON(w, r, &in) {
		return
	}
	u, err := s.b.CreateUser(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusCreated, u, err)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.b.Users(r.Context(), ActorFrom(r.Context()))
	allItems(w, r, us, err)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	u, err := s.b.User(r.Context(), ActorFrom(r.Context()), id)
	answer(w, r, http.StatusOK, u, err)
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in bridge.UserUpdate
	if !decodeJSON(w, r, &in) {
		return
	}
	u, err := s.b.UpdateUser(r.Context(), ActorFrom(r.Context()), id, in)
	answer(w, r, http.StatusOK, u, err)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	p, err := s.b.Policy(r.Context(), ActorFrom(r.Context()), r.PathValue("scope"), id)
	answer(w, r, http.StatusOK, p, err)
}

// setPolicy takes the scope and target from the path; the body may repeat
// them, but must then agree, so a body copied from another policy is not
// silently applied somewhere else.
func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in bridge.Policy
	if !decodeJSON(w, r, &in) {
		return
	}
	scope := r.PathValue("scope")
	if (in.Scope != "" && in.Scope != scope) || (in.TargetID != 0 && in.TargetID != id) {
		p := invalidRequest.with("the body names policy %s/%d but the path %s/%d", in.Scope, in.TargetID, scope, id)
		p.Field = "scope"
		writeProblem(w, r, p)
		return
	}
	in.Scope, in.TargetID = scope, id
	p, err := s.b.SetPolicy(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusOK, p, err)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if err := s.b.DeletePolicy(r.Context(), ActorFrom(r.Context()), r.PathValue("scope"), id); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
