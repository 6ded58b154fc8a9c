# syntax=docker/dockerfile:1
#
# ilp-farm image: the farm's supervisor and workers, without an embedded
# Redis (point it at one with REDIS_URL; see docker-compose.yml).
#
#   docker build -t ilp-farm .
#   docker run --rm -p 7768:7768 -e REDIS_URL=redis://my-redis:6379 ilp-farm

# --- build: full dependencies, TypeScript compiled to dist/ -----------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The workspace packages' manifests: npm ci links them (packages/protocol, packages/client).
COPY packages/protocol/package.json ./packages/protocol/
COPY packages/client/package.json ./packages/client/
# No lifecycle scripts yet: the package's own prepare script builds, and the
# sources it compiles are copied only below (npm run build then does it).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# npm run build builds the workspace packages first (the farm imports @ilp-farm/protocol).
COPY packages ./packages
COPY src ./src
COPY scripts ./scripts
RUN npm run build

# --- runtime: production dependencies and the compiled code only ----------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/protocol/package.json ./packages/protocol/
COPY packages/client/package.json ./packages/client/
# No dev dependencies (no tsc, no tsx); no lifecycle scripts: none of the
# production dependencies needs one, and the package's prepare script (tsc)
# could not run here; dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The farm's one workspace dependency at run time, as built (the client is not needed to run a farm).
COPY --from=build /app/packages/protocol/dist ./packages/protocol/dist
COPY bin ./bin
# The Lua scripts are read at run time from <package>/lua (next to package.json).
COPY lua ./lua
# The dashboard's page (HTML, JS, CSS) is served from the package too.
COPY src/http/dashboard ./src/http/dashboard
COPY config ./config

# The node image's unprivileged user.
USER node
EXPOSE 7768

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:7768/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The built CLI directly, not `npm start` (its prestart hook would run tsc).
# Node handles SIGTERM itself: the supervisor stops its workers in order.
CMD ["node", "dist/src/cli/main.js", "start", "--config", "/app/config/docker.yaml"]
