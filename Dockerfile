# campaign-privacy: the README's build, in a container. Build with
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t campaign-privacy .
# The image is scratch plus the binary (time-zone data embedded), the CA
# certificates (sslmode=verify-full) and the /data volume; it runs as
# nobody (65534) and checks itself with `campaign-privacy healthcheck`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/campaign-privacy ./cmd/campaign-privacy && mkdir -p /out/data

FROM scratch
ARG REVISION=unknown
LABEL org.opencontainers.image.title="campaign-privacy" \
      org.opencontainers.image.description="An Adobe Campaign Classic compatible privacy API service" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/campaign-privacy /campaign-privacy
COPY --from=build --chown=65534:65534 /out/data /data
USER 65534:65534
ENV CP_ADDR=:8080 CP_DATA_DIR=/data
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/campaign-privacy", "healthcheck"]
ENTRYPOINT ["/campaign-privacy"]
CMD ["serve"]
