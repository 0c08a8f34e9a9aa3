//! The async AT link against a scripted modem, over a real pseudo-terminal
//! (raw mode, like a USB serial port) and over `tokio::io::duplex`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use smsgate::at::commands::{
    Identify, MessageStat, PinQuery, Raw, ReadMessage, RegistrationQuery, SendMessage, SignalQuery,
};
use smsgate::at::urc::{PinState, RegKind, RegStatus};
use smsgate::at::{AtError, CmeError, Link, LinkConfig, LinkError, Urc};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::broadcast::error::RecvError;

/// One end of a pseudo-terminal as a non-blocking tokio stream.
struct Pty(AsyncFd<OwnedFd>);

impl Pty {
    fn new(fd: OwnedFd) -> Self {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        // SAFETY: the fd is owned by the AsyncFd from here on; nothing else
        // registers or closes it.
        let registered = unsafe { AsyncFd::register(fd) };
        match registered {
            Ok(fd) => Pty(fd),
            Err(_) => panic!("cannot register pty fd"),
        }
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.as_raw_fd(), unfilled).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), data).map_err(std::io::Error::from)
            }) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A pty pair: (the link's end = master, the modem's end = raw slave).
fn pty_pair() -> (Pty, Pty) {
    let p = nix::pty::openpty(None, None).unwrap();
    let mut t = nix::sys::termios::tcgetattr(&p.slave).unwrap();
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
    (Pty::new(p.master), Pty::new(p.slave))
}

/// Reads from the modem side until one of `ends` (included).
async fn read_until<S: AsyncRead + Unpin>(s: &mut S, ends: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b).await {
            Ok(1) => {
                out.push(b[0]);
                if ends.contains(&b[0]) {
                    return out;
                }
            }
            _ => return out,
        }
    }
}

async fn expect_cmd<S: AsyncRead + Unpin>(s: &mut S, want: &str) {
    let got = read_until(s, b"\r").await;
    assert_eq!(String::from_utf8_lossy(&got), format!("{want}\r"));
}

fn config(name: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name);
    c.ok_grace = Duration::from_millis(100);
    c
}

#[tokio::test]
async fn pty_command_response_with_echo() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty0"));
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CGMM").await;
        modem.write_all(b"AT+CGMM\r\r\nE17").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        modem.write_all(b"52\r\n\r\nOK\r\n").await.unwrap();
        modem
    });
    assert_eq!(link.send(&Identify::Model).await.unwrap(), "E1752");
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_urc_during_response_and_creg_not_urc() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty1"));
    let mut urcs = link.subscribe();
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CSQ").await;
        modem.write_all(b"\r\n+CSQ: 2").await.unwrap();
        modem
            .write_all(b"0,99\r\n+CMTI: \"SM\",5\r\n\r\nOK\r\n")
            .await
            .unwrap();
        expect_cmd(&mut modem, "AT+CREG?").await;
        modem
            .write_all(b"\r\n+CREG: 2,5,\"2AF5\",\"0B88E350\",2\r\n\r\nOK\r\n")
            .await
            .unwrap();
        modem.write_all(b"\r\n+CREG: 1\r\n").await.unwrap();
        modem
    });
    let sig = link.send(&SignalQuery).await.unwrap();
    assert_eq!((sig.rssi, sig.ber), (20, 99));
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::MessageStored {
            mem: "SM".into(),
            index: 5
        }
    );
    let (mode, reg) = link.send(&RegistrationQuery(RegKind::Cs)).await.unwrap();
    assert_eq!(
        (mode, reg.stat, reg.lac, reg.act),
        (2, RegStatus::Roaming, Some(0x2AF5), Some(2))
    );
    // The unsolicited +CREG after the OK is a URC, the answer was not.
    match urcs.recv().await.unwrap() {
        Urc::Registration {
            kind: RegKind::Cs,
            reg,
        } => assert_eq!(reg.stat, RegStatus::Home),
        other => panic!("unexpected {other:?}"),
    }
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_prompt_handshake_with_pdu() {
    let (host, mut modem) = pty_pair();
    let mut cfg = config("pty2");
    cfg.prompt_delay = Duration::from_millis(10);
    let link = Link::spawn(host, cfg);
    let pdu = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";
    let want_pdu = pdu.to_string();
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CMGS=23").await;
        modem.write_all(b"\r\n> ").await.unwrap();
        let body = read_until(&mut modem, &[0x1A]).await;
        assert_eq!(body, [want_pdu.as_bytes(), &[0x1A]].concat());
        modem
            .write_all(b"\r\n+CMGS: 183\r\n\r\nOK\r\n")
            .await
            .unwrap();
        modem
    });
    let mr = link
        .send(&SendMessage::new(pdu, 23).unwrap())
        .await
        .unwrap();
    assert_eq!(mr, 183);
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_prompt_timeout_sends_escape() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty3"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CMGS=1").await;
        modem.write_all(b"> ").await.unwrap();
        let body = read_until(&mut modem, &[0x1A]).await;
        assert_eq!(body, b"00FF\x1a");
        // Never answers; the link must abort with ESC.
        let esc = read_until(&mut modem, &[0x1B]).await;
        tx.send(esc).unwrap();
        modem
    });
    let cmd = SendMessage::new("00FF", 1)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let res = link.send(&cmd).await;
    assert!(matches!(res, Err(LinkError::Timeout { .. })), "{res:?}");
    assert_eq!(rx.await.unwrap(), vec![0x1B]);
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_timeout_then_next_command_works() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty4"));
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+SLOW").await;
        expect_cmd(&mut modem, "AT").await;
        // The late OK of the first command arrives now, then the answer
        // to the second: the link must not mix them up beyond one line.
        modem.write_all(b"\r\nOK\r\n").await.unwrap();
        modem
    });
    let slow = Raw {
        text: "AT+SLOW".into(),
        timeout: Duration::from_millis(150),
    };
    assert!(matches!(
        link.send(&slow).await,
        Err(LinkError::Timeout { .. })
    ));
    let quick = Raw {
        text: "AT".into(),
        timeout: Duration::from_secs(2),
    };
    assert_eq!(link.send(&quick).await.unwrap(), Vec::<String>::new());
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_error_codes_are_typed() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty5"));
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CMGR=3").await;
        modem
            .write_all(b"\r\n+CME ERROR: SIM PIN required\r\n")
            .await
            .unwrap();
        modem
    });
    match link.send(&ReadMessage(3)).await {
        Err(LinkError::At {
            error: AtError::Cme(Some(CmeError::SimPinRequired)),
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn pty_port_closing_mid_command_wakes_everyone() {
    let (host, mut modem) = pty_pair();
    let link = Link::spawn(host, config("pty6"));
    let mut urcs = link.subscribe();
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CMGL=4").await;
        modem.write_all(b"\r\n+CMGL: 1,0,,5\r\n").await.unwrap();
        // The modem goes away (USB unplug): the slave is closed.
        drop(modem);
    });
    let first = {
        let l = link.clone();
        tokio::spawn(async move {
            l.send(&smsgate::at::commands::ListMessages(MessageStat::All))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let queued: Vec<_> = (0..3)
        .map(|_| {
            let l = link.clone();
            tokio::spawn(async move { l.send(&SignalQuery).await })
        })
        .collect();
    peer.await.unwrap();
    assert!(matches!(first.await.unwrap(), Err(LinkError::Closed)));
    for q in queued {
        assert!(matches!(q.await.unwrap(), Err(LinkError::Closed)));
    }
    tokio::time::timeout(Duration::from_secs(2), link.closed())
        .await
        .unwrap();
    assert!(link.is_closed());
    assert!(matches!(
        link.send(&SignalQuery).await,
        Err(LinkError::Closed)
    ));
    assert!(matches!(urcs.recv().await, Err(RecvError::Closed)));
}

#[tokio::test]
async fn duplex_missing_final_ok_is_tolerated_for_cpin() {
    let (host, mut modem) = tokio::io::duplex(256);
    let link = Link::spawn(host, config("dup0"));
    let peer = tokio::spawn(async move {
        expect_cmd(&mut modem, "AT+CPIN?").await;
        // Wavecom: no final OK after +CPIN: READY.
        modem.write_all(b"+CPIN: READY\r\n").await.unwrap();
        expect_cmd(&mut modem, "AT+CGMI").await;
        modem.write_all(b" WAVECOM MODEM\r\nOK\r\n").await.unwrap();
        modem
    });
    assert_eq!(link.send(&PinQuery).await.unwrap(), PinState::Ready);
    assert_eq!(
        link.send(&Identify::Manufacturer).await.unwrap(),
        "WAVECOM MODEM"
    );
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn duplex_slow_subscriber_lags_but_never_blocks_the_link() {
    let (host, mut modem) = tokio::io::duplex(4096);
    let mut cfg = config("dup1");
    cfg.urc_capacity = 2;
    let link = Link::spawn(host, cfg);
    let mut slow = link.subscribe();
    let peer = tokio::spawn(async move {
        for i in 0..6 {
            modem
                .write_all(format!("\r\n+CMTI: \"SM\",{i}\r\n").as_bytes())
                .await
                .unwrap();
        }
        expect_cmd(&mut modem, "AT").await;
        modem.write_all(b"\r\nOK\r\n").await.unwrap();
        modem
    });
    // The link keeps serving commands while nobody reads the URCs.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(link.send(&Raw::new("AT")).await.is_ok());
    match slow.recv().await {
        Err(RecvError::Lagged(n)) => assert_eq!(n, 4),
        other => panic!("expected lag, got {other:?}"),
    }
    assert_eq!(
        slow.recv().await.unwrap(),
        Urc::MessageStored {
            mem: "SM".into(),
            index: 4
        }
    );
    assert_eq!(
        slow.recv().await.unwrap(),
        Urc::MessageStored {
            mem: "SM".into(),
            index: 5
        }
    );
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn duplex_eof_closes_link() {
    let (host, modem) = tokio::io::duplex(64);
    let link = Link::spawn(host, config("dup2"));
    drop(modem);
    tokio::time::timeout(Duration::from_secs(2), link.closed())
        .await
        .unwrap();
    assert!(matches!(
        link.send(&Raw::new("AT")).await,
        Err(LinkError::Closed)
    ));
}

#[tokio::test]
async fn duplex_cmt_and_cds_with_pdu_reach_subscribers() {
    let (host, mut modem) = tokio::io::duplex(256);
    let link = Link::spawn(host, config("dup3"));
    let mut urcs = link.subscribe();
    let peer = tokio::spawn(async move {
        modem.write_all(b"\r\n+CMT: ,23\r\n0791AB").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        modem.write_all(b"CD\r\n+CDS:25\r07914875\r").await.unwrap();
        modem
    });
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::Message {
            alpha: None,
            length: Some(23),
            pdu: "0791ABCD".into()
        }
    );
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::StatusReport {
            length: Some(25),
            pdu: "07914875".into()
        }
    );
    drop(peer.await.unwrap());
}
