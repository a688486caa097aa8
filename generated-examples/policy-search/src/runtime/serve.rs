//! Transports: stdio and Streamable HTTP, hardened where rmcp's defaults are
//! open (Origin checks off, unbounded stdio lines, Nagle on), and shut down
//! cleanly on SIGTERM or Ctrl-C.

use rmcp::ServiceExt as _;
use rmcp::transport::async_rw::AsyncRwTransport;

use super::config::Config;
use super::dispatch::Dispatch;
use super::server::McpServer;

/// Serves one client over stdin/stdout until it disconnects or a signal arrives.
pub async fn stdio<D: Dispatch>(server: McpServer<D>, config: &Config) -> Result<(), String> {
    let transport = AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout())
        .with_max_line_length(config.stdio.max_line_bytes);
    let running = server
        .serve(transport)
        .await
        .map_err(|e| format!("the client did not complete the handshake: {e}"))?;
    tracing::info!("serving on stdio");
    let cancel = running.cancellation_token();
    tokio::select! {
        quit = running.waiting() => {
            quit.map_err(|e| format!("the server stopped abnormally: {e}"))?;
        }
        () = shutdown_signal() => {
            tracing::info!("signal received, shutting down");
            cancel.cancel();
        }
    }
    Ok(())
}

/// Serves Streamable HTTP on `listen` until a signal arrives: stateless, JSON
/// responses when the client accepts them, Host and Origin allowlists on.
#[cfg(feature = "http")]
pub async fn http<D: Dispatch>(server: McpServer<D>, config: &Config, listen: &str) -> Result<(), String> {
    use std::sync::Arc;

    use axum::serve::ListenerExt as _;
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    use tokio_util::sync::CancellationToken;

    let shutdown = CancellationToken::new();
    refuse_unauthenticated_exposure(server.surface(), listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let mut origins = server.surface().http.origins.clone();
    origins.extend(config.http.allowed_origins.iter().cloned());
    // The server's own origin (each allowed host at the bound port) is same-origin, not cross-site.
    for host in &config.http.allowed_hosts {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        origins.push(format!("http://{host}:{}", bound.port()));
    }
    let http_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(config.http.allowed_hosts.clone())
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(server.surface().http.max_request_bytes as usize)
        .with_cancellation_token(shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        http_config,
    );
    let router = axum::Router::new()
        .route_service(&config.http.path, service)
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let listener = listener.tap_io(|stream| {
        // Small JSON-RPC messages: send them now, not after Nagle's delay.
        let _ = stream.set_nodelay(true);
    });
    tracing::info!(address = %bound, path = %config.http.path, "serving Streamable HTTP");
    // Tests and supervisors read the bound address (useful with port 0) from this line.
    eprintln!("listening on http://{bound}{}", config.http.path);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("signal received, shutting down");
            shutdown.cancel();
        })
        .await
        .map_err(|e| format!("the HTTP server failed: {e}"))
}

/// OAuth token validation is not in this runtime release yet: a contract that
/// requires it may be served on loopback (development, tests), never on an
/// address other machines can reach.
#[cfg(feature = "http")]
fn refuse_unauthenticated_exposure(surface: &super::surface::Surface, listen: &str) -> Result<(), String> {
    if !surface.http.oauth {
        return Ok(());
    }
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        tracing::warn!(
            "the contract requires OAuth, which this runtime does not enforce yet: serving on loopback only"
        );
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {listen}: the contract requires OAuth, which this charter runtime does not \
             enforce yet; listen on 127.0.0.1 or use stdio"
        ))
    }
}

/// Resolves on SIGTERM (how orchestrators stop a pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
