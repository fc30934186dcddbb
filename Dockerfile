# syntax=docker/dockerfile:1
# Image of airflow-downgrade-guard. Build from the repository root:
#   docker build -t airflow-downgrade-guard:0.1.0 .
# (the tag the install manifests use; pass another with `manifests --image`).
ARG NODE_IMAGE=node:24-slim

# --- build: all dependencies, compile TypeScript to dist/ ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency's install script would fetch a second Node binary
# (the base image already is Node 24), and `prepare` would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

# --- runtime: production dependencies, compiled code, nothing else ---
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# Numeric user and group, so Kubernetes can check runAsNonRoot without a passwd entry; it owns no
# file in the image, and the root filesystem can be mounted read-only (writes go to /tmp).
USER 10001:10001
EXPOSE 8443
# For plain `docker run`; in Kubernetes the Deployment's readiness/liveness probes are used instead.
# rejectUnauthorized is off because the serving certificate names the Service, not 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('node:https').get({host:'127.0.0.1',port:8443,path:'/healthz',rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/airflow-downgrade-guard.js"]
CMD ["serve"]
