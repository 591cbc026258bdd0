package api

import (
	"net/http"

	"github.com/slurmgate/slurmgate/bridge"
)

// catalogRoutes: what sessions are built from, scaling groups, resource
// presets and images. Every user may read the catalogue; changing it is
// for superadmins, which the bridge checks too.
func (s *Server) catalogRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/scaling-groups", summary: "List the scaling groups",
			access: authenticated, handler: s.listScalingGroups, response: page[bridge.ScalingGroup]{}},
		{method: "GET", pattern: "/api/v1/scaling-groups/{name}", summary: "Get a scaling group",
			access: authenticated, handler: s.getScalingGroup, response: bridge.ScalingGroup{}},
		{method: "POST", pattern: "/api/v1/scaling-groups", summary: "Register partitions as a scaling group",
			access: superadmin, handler: s.createScalingGroup, status: http.StatusCreated,
			request: bridge.ScalingGroup{}, response: bridge.ScalingGroup{}},
		{method: "DELETE", pattern: "/api/v1/scaling-groups/{name}", summary: "Remove a scaling group no session refers to",
			access: superadmin, handler: s.deleteScalingGroup, status: http.StatusNoContent},

		{method: "GET", pattern: "/api/v1/presets", summary: "List the resource presets",
			access: authenticated, handler: s.listPresets, response: page[bridge.Preset]{}},
		{method: "POST", pattern: "/api/v1/presets", summary: "Add a resource preset",
			access: superadmin, handler: s.createPreset, status: http.StatusCreated,
			request: bridge.Preset{}, response: bridge.Preset{}},
		{method: "DELETE", pattern: "/api/v1/presets/{name}", summary: "Remove a resource preset",
			access: superadmin, handler: s.deletePreset, status: http.StatusNoContent},

		// Image references hold slashes ("lab/pytorch:2.3"), so the
		// reference is the rest of the path.
		{method: "GET", pattern: "/api/v1/images", summary: "List the image catalogue",
			access: authenticated, handler: s.listImages, response: page[bridge.Image]{}},
		{method: "GET", pattern: "/api/v1/images/{ref...}", summary: `Get an image by "name[:tag]" (tag "latest" when omitted)`,
			access: authenticated, handler: s.getImage, response: bridge.Image{}},
		// An image the gateway can read is inspected on the way in: its
		// architecture, labels and the services and minimum resources its
		// Slurmgate labels declare appear in the image's JSON ("architecture",
		// "labels", "info"); bad labels are refused with the label named.
		{method: "POST", pattern: "/api/v1/images", summary: "Add an image to the catalogue (a SIF or directory the gateway can read is inspected for its architecture and labels)",
			access: superadmin, handler: s.createImage, status: http.StatusCreated,
			request: bridge.Image{}, response: bridge.Image{}},
		{method: "DELETE", pattern: "/api/v1/images/{ref...}", summary: "Remove an image from the catalogue",
			access: superadmin, handler: s.deleteImage, status: http.StatusNoContent},
	}
}

func (s *Server) listScalingGroups(w http.ResponseWriter, r *http.Request) {
	sgs, err := s.b.ScalingGroups(r.Context())
	allItems(w, r, sgs, err)
}

func (s *Server) getScalingGroup(w http.ResponseWriter, r *http.Request) {
	sg, err := s.b.ScalingGroup(r.Context(), r.PathValue("name"))
	answer(w, r, http.StatusOK, sg, err)
}

func (s *Server) createScalingGroup(w http.ResponseWriter, r *http.Request) {
	var in bridge.ScalingGroup
	if !decodeJSON(w, r, &in) {
		return
	}
	sg, err := s.b.CreateScalingGroup(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusCreated, sg, err)
}

func (s *Server) deleteScalingGroup(w http.ResponseWriter, r *http.Request) {
	noContent(w, r, s.b.DeleteScalingGroup(r.Context(), ActorFrom(r.Context()), r.PathValue("name")))
}

func (s *Server) listPresets(w http.ResponseWriter, r *http.Request) {
	ps, err := s.b.Presets(r.Context())
	allItems(w, r, ps, err)
}

func (s *Server) createPreset(w http.ResponseWriter, r *http.Request) {
	var in bridge.Preset
	if !decodeJSON(w, r, &in) {
		return
	}
	p, err := s.b.CreatePreset(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusCreated, p, err)
}

func (s *Server) deletePreset(w http.ResponseWriter, r *http.Request) {
	noContent(w, r, s.b.DeletePreset(r.Context(), ActorFrom(r.Context()), r.PathValue("name")))
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.b.Images(r.Context())
	allItems(w, r, imgs, err)
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) {
	img, err := s.b.Image(r.Context(), r.PathValue("ref"))
	answer(w, r, http.StatusOK, img, err)
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request) {
	var in bridge.Image
	if !decodeJSON(w, r, &in) {
		return
	}
	img, err := s.b.CreateImage(r.Context(), ActorFrom(r.Context()), in)
	answer(w, r, http.StatusCreated, img, err)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) {
	noContent(w, r, s.b.DeleteImage(r.Context(), ActorFrom(r.Context()), r.PathValue("ref")))
}

// noContent answers 204, or the error.
func noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
