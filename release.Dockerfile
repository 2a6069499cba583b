# syntax=docker/dockerfile:1
# The release image (.github/workflows/release.yml): the runtime stage of ./Dockerfile around the
# executables the release built and tested on native x64 and arm64 runners, so each platform's image
# carries exactly the released file. Nothing runs at build time (no QEMU): the build only copies.
# The context is a folder holding amd64/mcpgate and arm64/mcpgate (test/package/dockerfile.test.ts
# checks this file matches ./Dockerfile's runtime stage).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG TARGETARCH
LABEL org.opencontainers.image.title="mcpgate" \
      org.opencontainers.image.description="A lock for self-hosted MCP servers: API keys, OAuth, per-key allowlists, rate limits and an audit line per request." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/OWNER/mcpgate"
COPY ${TARGETARCH}/mcpgate /usr/local/bin/mcpgate
ENV MCPGATE_CONFIG=/etc/mcpgate/config.yaml \
    MCPGATE_LISTEN=0.0.0.0:8080
# Numeric, so Kubernetes' runAsNonRoot can verify it (distroless's nonroot user is 65532).
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mcpgate", "health"]
ENTRYPOINT ["/usr/local/bin/mcpgate"]
CMD ["serve"]
