-- Which gateway replica holds a session's agent tunnel. An agent dials
-- whichever replica the load balancer gives it, and a request for the
-- session's apps, terminal or commands may reach another one; that one
-- forwards the request to gateway_url (server.advertise_url of the replica
-- holding the tunnel). NULL: no agent connected, or a single gateway that
-- advertises no URL.
ALTER TABLE session_agents ADD COLUMN gateway_url text;
