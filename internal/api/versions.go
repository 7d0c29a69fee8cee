package api

import "net/http"

// handleVersions is $versions (R4 OperationDefinition fhir-versions): the
// FHIR versions this server speaks and its default. It needs no token,
// like the CapabilityStatement.
func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	if err := negotiate(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentFHIR)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write([]byte(`{"resourceType":"Parameters","parameter":[{"name":"version","valueCode":"4.0"},{"name":"default","valueCode":"4.0"}]}`))
}
