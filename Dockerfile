# Build: docker build -t inter-llm-mailbox .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --uid 10001 --system mailbox && mkdir -p /var/lib/mailbox/spool /etc/mailbox \
    && chown -R mailbox /var/lib/mailbox
COPY --from=build /src/target/release/mailbox /usr/local/bin/mailbox
COPY config /etc/mailbox/config
# production.toml names /etc/mailbox/casbin (where Kubernetes mounts the ConfigMap); the shipped
# files are placed there so the image also runs on its own.
COPY config/casbin /etc/mailbox/casbin
USER mailbox
EXPOSE 7700
ENV MAILBOX__SERVER__BIND=0.0.0.0:7700
ENTRYPOINT ["/usr/local/bin/mailbox"]
CMD ["serve", "--config", "/etc/mailbox/config/production.toml"]
