//! Reads `scontrol show job --oneliner`: one line of `Key=Value` fields
//! separated by spaces per job.
//!
//! Most values hold no spaces (Slurm writes `Reason` with underscores for
//! that reason), but a few are free text: the job's name, its command, its
//! directories and files, its comments. A free-text value runs on until a
//! word that starts with a key Slurm prints (`StdErr=`, …); the job's name,
//! which comes second, runs until `UserId=`, its fixed successor, so a name
//! cannot fake the fields after it. When a key appears twice (a comment
//! holding `Reason=x`), the first wins: Slurm prints the state and reason
//! before any free text but the name.

use std::path::PathBuf;

use crate::job::{JobExit, JobId, JobInfo, JobState};

/// The keys Slurm 22.05 to 24.x print for a job (with `--details` too).
const KNOWN_KEYS: &[&str] = &[
    "JobId",
    "ArrayJobId",
    "ArrayTaskId",
    "ArrayTaskThrottle",
    "HetJobId",
    "HetJobOffset",
    "HetJobIdSet",
    "JobName",
    "UserId",
    "GroupId",
    "MCS_label",
    "Priority",
    "Nice",
    "Account",
    "QOS",
    "JobState",
    "Reason",
    "Dependency",
    "Requeue",
    "Restarts",
    "BatchFlag",
    "Reboot",
    "ExitCode",
    "DerivedExitCode",
    "RunTime",
    "TimeLimit",
    "TimeMin",
    "SubmitTime",
    "EligibleTime",
    "AccrueTime",
    "StartTime",
    "EndTime",
    "Deadline",
    "PreemptEligibleTime",
    "PreemptTime",
    "SuspendTime",
    "SecsPreSuspend",
    "LastSchedEval",
    "Scheduler",
    "Partition",
    "AllocNode:Sid",
    "ReqNodeList",
    "ExcNodeList",
    "NodeList",
    "BatchHost",
    "NumNodes",
    "NumCPUs",
    "NumTasks",
    "CPUs/Task",
    "ReqB:S:C:T",
    "TRES",
    "Socks/Node",
    "NtasksPerN:B:S:C",
    "CoreSpec",
    "ThreadSpec",
    "Nodes",
    "CPU_IDs",
    "Mem",
    "GRES",
    "MinCPUsNode",
    "MinMemoryNode",
    "MinMemoryCPU",
    "MinTmpDiskNode",
    "Features",
    "ClusterFeatures",
    "Prefer",
    "DelayBoot",
    "OverSubscribe",
    "Contiguous",
    "Licenses",
    "LicensesAlloc",
    "Network",
    "Reservation",
    "Command",
    "WorkDir",
    "AdminComment",
    "SystemComment",
    "Comment",
    "StdErr",
    "StdIn",
    "StdOut",
    "Container",
    "ContainerID",
    "Power",
    "TresPerNode",
    "TresPerJob",
    "TresPerSocket",
    "TresPerTask",
    "CpusPerTres",
    "MemPerTres",
    "TresBind",
    "TresFreq",
    "NtasksPerTRES",
    "MailUser",
    "MailType",
    "CpuFreqMin",
    "CpuFreqMax",
    "CpuFreqGov",
    "BurstBuffer",
    "BurstBufferState",
    "Switches",
    "Wait-for-Switch",
    "KillOInInvalidDependent",
    "ResvPorts",
    "SpankPlugins",
];

/// Keys whose values may hold spaces.
const FREE_TEXT: &[&str] = &[
    "JobName",
    "Command",
    "WorkDir",
    "Comment",
    "AdminComment",
    "SystemComment",
    "StdErr",
    "StdIn",
    "StdOut",
    "Container",
];

/// Why a line is not a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

/// The fields of one line, in order, duplicates kept.
pub(crate) fn fields(line: &str) -> Vec<(&str, &str)> {
    let mut fields = Vec::new();
    // The field being read: its key and where its value starts.
    let mut current: Option<(&str, usize)> = None;
    let mut word_start = 0;
    loop {
        if let Some(key) = key_at(&line[word_start..]) {
            let starts_field = match current {
                None => true,
                Some(("JobName", _)) => key == "UserId",
                Some((open, _)) if FREE_TEXT.contains(&open) => KNOWN_KEYS.contains(&key),
                Some(_) => true,
            };
            if starts_field {
                if let Some((open, value_start)) = current {
                    fields.push((open, value_of(line, value_start, word_start)));
                }
                current = Some((key, word_start + key.len() + 1));
            }
        }
        match line[word_start..].find(' ') {
            Some(space) => word_start += space + 1,
            None => break,
        }
    }
    if let Some((open, value_start)) = current {
        fields.push((open, value_of(line, value_start, line.len())));
    }
    fields
}

/// The key a word starts with (`Key=`): a letter, then letters, digits and
/// `_:/-`.
fn key_at(text: &str) -> Option<&str> {
    let end = text.find('=')?;
    let key = &text[..end];
    let mut chars = key.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/' | '-')))
    .then_some(key)
}

/// The value from `start` to the space before `end`, without the spaces
/// that separate fields.
fn value_of(line: &str, start: usize, end: usize) -> &str {
    line.get(start..end.max(start))
        .unwrap_or_default()
        .trim_end_matches(' ')
}

/// The first value of `key`.
fn get<'a>(fields: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, value)| *value)
}

/// A value that Slurm writes as `(null)`, `None`, `Unknown` or nothing when
/// there is none.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|value| !matches!(*value, "" | "(null)" | "None" | "Unknown" | "N/A"))
}

/// The job `id` among the lines `scontrol show job --oneliner ID` printed
/// (an array job prints one line per task).
pub(crate) fn job_info(output: &str, id: JobId) -> Result<JobInfo, ParseError> {
    let wanted = id.to_string();
    let line = output
        .lines()
        .find(|line| get(&fields(line), "JobId") == Some(wanted.as_str()))
        .ok_or_else(|| ParseError(format!("no line with JobId={id}")))?;
    let fields = fields(line);
    let state = get(&fields, "JobState")
        .filter(|state| !state.is_empty())
        .map(JobState::from_slurm)
        .ok_or_else(|| ParseError("no JobState".into()))?;
    let exit_code = match get(&fields, "ExitCode") {
        Some(text) => Some(
            exit(text)
                .ok_or_else(|| ParseError(format!("ExitCode `{text}` is not CODE:SIGNAL")))?,
        ),
        None => None,
    };
    Ok(JobInfo {
        id,
        name: get(&fields, "JobName").unwrap_or_default().to_owned(),
        exit_code: exit_code.filter(|_| state.is_finished()),
        state,
        reason: present(get(&fields, "Reason")).map(str::to_owned),
        node: present(get(&fields, "NodeList")).map(str::to_owned),
        start_time: present(get(&fields, "StartTime")).map(str::to_owned),
        end_time: present(get(&fields, "EndTime")).map(str::to_owned),
        stdout: present(get(&fields, "StdOut")).map(PathBuf::from),
        stderr: present(get(&fields, "StdErr")).map(PathBuf::from),
    })
}

fn exit(text: &str) -> Option<JobExit> {
    let (code, signal) = text.split_once(':')?;
    Some(JobExit {
        code: code.parse().ok()?,
        signal: signal.parse().ok()?,
    })
}

#[cfg(test)]
mod tests;
