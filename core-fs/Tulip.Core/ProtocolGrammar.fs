namespace Tulip.Core

/// Where a protocol is in its callback grammar (CPython protocols.py):
///
///     connection_made (data_received* eof_received?)? connection_lost
///
/// connection_made exactly once, first; connection_lost exactly once, last; nothing after it.
type ProtocolPhase =
    | Fresh
    | Connected
    | EofSeen
    | Lost

/// A protocol callback a transport is about to make.
type ProtocolCall =
    | ConnectionMade
    | DataReceived
    | EofReceived
    | ConnectionLost

[<RequireQualifiedAccess>]
module ProtocolGrammar =
    /// The phase after `call`, or the reason the grammar forbids it (the state stays as it was).
    let next (call: ProtocolCall) (phase: ProtocolPhase) : Result<ProtocolPhase, Rejection> =
        match phase, call with
        | Fresh, ConnectionMade -> Ok Connected
        | Connected, DataReceived -> Ok Connected
        | Connected, EofReceived -> Ok EofSeen
        | (Connected | EofSeen), ConnectionLost -> Ok Lost
        | _ -> Error (InvalidState (sprintf "protocol call %A not allowed after %A" call phase))

    /// Whether a run of calls is a sentence of the grammar (a whole connection's life).
    let accepts (calls: ProtocolCall list) =
        calls
        |> List.fold (fun st c -> st |> Result.bind (next c)) (Ok Fresh)
        |> (=) (Ok Lost)
