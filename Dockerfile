# syntax=docker/dockerfile:1
# mcpgate container image: one self-contained executable on a distroless base.
#
#   docker build -t mcpgate .
#   docker run --rm -p 8080:8080 -v "$PWD/mcpgate.yaml:/etc/mcpgate/config.yaml:ro" mcpgate

# --- build: bundle the CLI and turn it into a Node single-executable application (scripts/build-bin.ts)
FROM node:24-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts/ scripts/
COPY src/ src/
RUN npm run build:bin

# --- runtime: glibc + libstdc++ (what the Node binary links against), no shell, no package manager
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="mcpgate" \
      org.opencontainers.image.description="A lock for self-hosted MCP servers: API keys, OAuth, per-key allowlists, rate limits and an audit line per request." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/OWNER/mcpgate"
COPY --from=build /src/dist/mcpgate /usr/local/bin/mcpgate
ENV MCPGATE_CONFIG=/etc/mcpgate/config.yaml \
    MCPGATE_LISTEN=0.0.0.0:8080
# Numeric, so Kubernetes' runAsNonRoot can verify it (distroless's nonroot user is 65532).
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mcpgate", "health"]
ENTRYPOINT ["/usr/local/bin/mcpgate"]
CMD ["serve"]
