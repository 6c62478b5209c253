# campaign-privacy: the same build as the README's, in a container.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o campaign-privacy ./cmd/campaign-privacy && mkdir -p /out/data

FROM scratch
COPY --from=build /src/campaign-privacy /campaign-privacy
COPY --from=build --chown=65534:65534 /out/data /data
USER 65534:65534
ENV CP_ADDR=:8080 CP_DATA_DIR=/data
EXPOSE 8080
VOLUME /data
ENTRYPOINT ["/campaign-privacy"]
CMD ["serve"]
