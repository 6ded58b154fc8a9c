/**
 * The one name the farm's tunnel server (src/tunnel/server.ts) and the
 * client's tunnel (ilp-farm-client, tunnel.ts) must agree on beyond the
 * localtunnel protocol: the header of a registration that proves, with the
 * tunnel's secret, that it owns the id it asks for.
 */
export const TUNNEL_SECRET_HEADER = 'x-tunnel-secret'
