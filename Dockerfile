# Shoal broker image: build with the dev toolchain, run with production dependencies only.
#   docker build -t shoal .
#   docker run -p 1883:1883 -p 8083:8083 -p 9090:9090 -v shoal-data:/data shoal
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/copy-lua.mjs ./scripts/
RUN npm run build

FROM node:22-slim
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="shoal" \
      org.opencontainers.image.description="Scale-out MQTT 3.1/3.1.1/5.0 broker" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script builds with tsc, which is a dev dependency.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# A single node keeps retained messages, persistent sessions and wills in /data (persistence.dir), so
# they survive a restart and a kill -9. With SHOAL_REDIS (a cluster) the state is in Redis and /data
# is not used. Nothing else is written at run time (a read-only root fs works).
RUN mkdir /data && chown node:node /data
VOLUME ["/data"]
ENV SHOAL_DATA_DIR=/data
# The image's unprivileged user (uid 1000).
USER node
EXPOSE 1883 8883 8083 8084 9090
# SIGTERM starts the graceful drain (docs/deployment.md); give the container at least
# drain.notReadyDelayMs + shutdownTimeoutMs before it is killed.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.SHOAL_HTTP_PORT||9090)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/shoal.js"]
CMD ["start"]
