# mailwarden container image: multi-stage (build with dev dependencies, run with production ones),
# non-root, no configuration, keys or tokens inside (.dockerignore); the configuration is mounted
# read-only at /etc/mailwarden (deploy/container/mailwarden.yaml is the one these ports match).
# Build: docker build -t mailwarden .
# Run:   docker compose up   (docker-compose.yaml: mailwarden + Redis)

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's postinstall (patch-package) applies patches/ to node_modules (smtp-server's greeting delay).
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
COPY test ./test
COPY bench ./bench
COPY scripts ./scripts
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# tini as PID 1 so SIGHUP (reload) and SIGTERM (drain) reach node, and zombies are reaped.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/plugins ./dist/plugins
COPY package.json ./
# Unprivileged: Docker lets container processes bind ports below 1024 without root
# (net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace).
USER node
# IMAP (implicit TLS 993, STARTTLS 143), SMTP submission (implicit TLS 465, STARTTLS 587), admin API
# 8025: the listeners of deploy/container/mailwarden.yaml.
EXPOSE 993 143 465 587 8025
# /healthz on the admin listener (admin.listen 0.0.0.0:8025 in the container config; no token needed).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8025/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/src/cli/index.js"]
CMD ["start", "--config", "/etc/mailwarden/mailwarden.yaml"]
