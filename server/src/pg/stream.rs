//! A byte stream that is plain TCP or TLS over TCP, and its split into owned read/write halves.
//!
//! Plain TCP splits with `into_split` (no lock between halves), which keeps the common loopback
//! path as cheap as a raw socket; TLS needs `tokio::io::split`, since one TLS state serves both.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A connection to a client or to an upstream, possibly wrapped in TLS.
pub enum PgStream {
    Plain(TcpStream),
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl PgStream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, PgStream::Plain(_))
    }

    pub fn into_split(self) -> (ReadSide, WriteSide) {
        match self {
            PgStream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadSide::Plain(r), WriteSide::Plain(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (ReadSide::Tls(r), WriteSide::Tls(w))
            }
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            PgStream::Plain($s) => $e,
            PgStream::ServerTls($s) => $e,
            PgStream::ClientTls($s) => $e,
        }
    };
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            PgStream::Plain(s) => s.is_write_vectored(),
            PgStream::ServerTls(s) => s.is_write_vectored(),
            PgStream::ClientTls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

pub enum ReadSide {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<PgStream>),
}

pub enum WriteSide {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<PgStream>),
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadSide::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ReadSide::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WriteSide::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Plain(s) => Pin::new(s).poll_flush(cx),
            WriteSide::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WriteSide::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
