//! Running as a Windows service (LocalSystem), with the windows-service crate.
//!
//! The same `tunnelwatch.exe` serves both ways: [`run`] first offers itself to the service
//! control manager (`StartServiceCtrlDispatcherW`). Started by the SCM, it runs as the service
//! `tunnelwatch`; started from a console, that call fails at once with
//! `ERROR_FAILED_SERVICE_CONTROLLER_CONNECT` and the sensor runs in the console. A service has
//! no console, so its stdout (the JSON lines) is appended to
//! `%ProgramData%\tunnelwatch\alerts.json` and its stderr (logs, stats) to
//! `%ProgramData%\tunnelwatch\tunnelwatch.log`. A service stop, a pre-shutdown or a
//! shutdown notification stops the ETW sessions: the service reports `StopPending` (with a
//! wait hint) as soon as it is asked, then `Stopped` once the sessions are gone. It accepts
//! `STOP`, `PRESHUTDOWN` and `SHUTDOWN` while running.
//!
//! Install (elevated prompt):
//! `sc.exe create tunnelwatch binPath= "\"C:\Program Files\tunnelwatch\tunnelwatch.exe\"" start= auto obj= LocalSystem`,
//! then `sc.exe start tunnelwatch`.

use std::{
    ffi::OsString,
    fs::{self, File, OpenOptions},
    os::windows::io::AsRawHandle,
    path::PathBuf,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use tunnelwatch_engine::engine::Engine;
use windows_service::{
    define_windows_service,
    service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus,
        ServiceType,
    },
    service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle},
    service_dispatcher,
};

use crate::sensor::{self, Options, RunError, Stop};

/// The service's name (as given to `sc.exe create`).
pub const SERVICE_NAME: &str = "tunnelwatch";
/// `ERROR_FAILED_SERVICE_CONTROLLER_CONNECT`: not started by the SCM.
const NOT_A_SERVICE: i32 = 1063;

/// How the process ran.
pub enum Outcome {
    /// As a service; the sensor's result.
    Service(Result<Stop, RunError>),
    /// Not started by the SCM: run it in the console (the job is handed back).
    Console(Options, Box<Engine>),
}

/// What the service main needs, handed over from the dispatcher's caller.
struct Job {
    opts: Options,
    engine: Engine,
}

static JOB: Mutex<Option<Job>> = Mutex::new(None);
static RESULT: Mutex<Option<Result<Stop, RunError>>> = Mutex::new(None);
/// The status handle, for the control handler (which is registered before it exists).
static STATUS: OnceLock<ServiceStatusHandle> = OnceLock::new();

/// What the SCM is told while running: stop, pre-shutdown and shutdown notifications.
fn accepted(state: ServiceState) -> ServiceControlAccept {
    if state == ServiceState::Running {
        ServiceControlAccept::STOP
            | ServiceControlAccept::PRESHUTDOWN
            | ServiceControlAccept::SHUTDOWN
    } else {
        ServiceControlAccept::empty()
    }
}

/// Reports `state` to the SCM (`exit`: 0, or the service-specific exit code).
fn report(state: ServiceState, exit: u32, checkpoint: u32) {
    let Some(status) = STATUS.get() else {
        return;
    };
    let _ = status.set_service_status(ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accepted(state),
        exit_code: if exit == 0 {
            ServiceExitCode::Win32(0)
        } else {
            ServiceExitCode::ServiceSpecific(exit)
        },
        checkpoint,
        // Stopping waits up to 5 s for the ETW threads.
        wait_hint: Duration::from_secs(10),
        process_id: None,
    });
}

define_windows_service!(ffi_service_main, service_main);

/// Runs as the service when the SCM started this process, else hands the job back.
pub fn run(opts: Options, engine: Engine) -> Outcome {
    *JOB.lock().unwrap() = Some(Job { opts, engine });
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(NOT_A_SERVICE) => {
            match JOB.lock().unwrap().take() {
                Some(job) => Outcome::Console(job.opts, Box::new(job.engine)),
                None => {
                    Outcome::Service(Err(RunError::Runtime("the service job was taken".into())))
                }
            }
        }
        Err(e) => Outcome::Service(Err(RunError::Runtime(format!(
            "the service control manager failed: {e}"
        )))),
        Ok(()) => Outcome::Service(RESULT.lock().unwrap().take().unwrap_or_else(|| {
            Err(RunError::Runtime(
                "the service ended without running".into(),
            ))
        })),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let Some(job) = JOB.lock().unwrap().take() else {
        return;
    };
    let result = run_service(job);
    *RESULT.lock().unwrap() = Some(result);
}

fn run_service(job: Job) -> Result<Stop, RunError> {
    let status = service_control_handler::register(SERVICE_NAME, |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            report(ServiceState::StopPending, 0, 1);
            sensor::request_stop();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .map_err(|e| RunError::Runtime(format!("cannot register the service handler: {e}")))?;
    let _ = STATUS.set(status);
    report(ServiceState::StartPending, 0, 1);
    // The files stay open until the process exits: their handles are stdout and stderr, and
    // the caller still prints the outcome.
    match redirect_std_handles() {
        Ok(files) => std::mem::forget(files),
        Err(e) => {
            report(ServiceState::Stopped, 1, 0);
            return Err(RunError::Environment(format!(
                "cannot open the output files in {}: {e}",
                data_dir().display()
            )));
        }
    }
    report(ServiceState::Running, 0, 0);
    let result = sensor::run(&job.opts, job.engine);
    report(ServiceState::StopPending, 0, 2);
    report(ServiceState::Stopped, u32::from(result.is_err()), 0);
    result
}

/// `%ProgramData%\tunnelwatch`.
pub fn data_dir() -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
    PathBuf::from(base).join("tunnelwatch")
}

/// Points stdout at `alerts.json` and stderr at `tunnelwatch.log` (both appended) in
/// [`data_dir`]; Rust's stdout and stderr look the handles up on every write.
fn redirect_std_handles() -> std::io::Result<(File, File)> {
    use windows_sys::Win32::System::Console::{STD_ERROR_HANDLE, STD_OUTPUT_HANDLE, SetStdHandle};

    let dir = data_dir();
    fs::create_dir_all(&dir)?;
    let open = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let out = open("alerts.json")?;
    let err = open("tunnelwatch.log")?;
    // SAFETY: the handles are valid open files, kept open by the caller while in use.
    unsafe {
        SetStdHandle(STD_OUTPUT_HANDLE, out.as_raw_handle());
        SetStdHandle(STD_ERROR_HANDLE, err.as_raw_handle());
    }
    Ok((out, err))
}
