using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// A <see cref="CancellationToken"/> that cancels a loop future or task (issue 14.1 for the composition
/// functions and task creation): the token fires on any thread, the cancel is marshalled onto the
/// future's loop (<see cref="EventLoop.InvokeOnLoop{TState}(Action{TState}, TState)"/>, inline when
/// already there), and the registration is disposed when the future is done, whichever way it ended, so
/// a long-lived token keeps nothing alive. A future cancelled through a token remembers the token, and
/// its <see cref="CancelledException"/> carries it (<see cref="OperationCanceledException.CancellationToken"/>).
/// The token is kept in a weak table, not in a field: futures made without a token pay nothing
/// (no field, no registration, no allocation).
/// </summary>
internal static class TokenLink
{
    private static readonly ConditionalWeakTable<Future, StrongBox<CancellationToken>> s_tokens = new();
    private static volatile bool s_any;
    private static long s_live;

    /// <summary>Registrations made and not disposed yet (tests: a long-lived token leaks none).</summary>
    internal static long LiveRegistrations => Interlocked.Read(ref s_live);

    /// <summary>The exception of a cancelled future: with the token that cancelled it, if one did.</summary>
    internal static CancelledException Cancelled(Future future, string? message) =>
        s_any && s_tokens.TryGetValue(future, out var box) ? new CancelledException(message, box.Value) : new CancelledException(message);

    /// <summary>The token that cancelled <paramref name="future"/>, or <see cref="CancellationToken.None"/>.</summary>
    internal static CancellationToken TokenOf(Future future) =>
        s_any && s_tokens.TryGetValue(future, out var box) ? box.Value : CancellationToken.None;

    /// <summary>
    /// Cancels <paramref name="target"/> when <paramref name="token"/> fires (nothing if it cannot). Call
    /// on the target's loop. A token already cancelled cancels at once (a task before its first step).
    /// </summary>
    internal static void CancelOnToken(Future target, CancellationToken token)
    {
        if (Register(target, token) is { } link) target.AddDoneCallback(static (_, l) => l.Dispose(), link);
    }

    /// <summary>As <see cref="CancelOnToken"/>, for an operation that disposes the registration itself
    /// when it ends (in a <c>finally</c>): null when nothing was registered.</summary>
    internal static Canceller? Register(Future target, CancellationToken token)
    {
        if (!token.CanBeCanceled || target.Done) return null;
        if (token.IsCancellationRequested)
        {
            CancelWith(target, token);
            return null;
        }

        var link = new Canceller(target, token);
        Interlocked.Increment(ref s_live);
        // Unsafe: no ExecutionContext to flow, the callback only marshals to the loop. If the token fires
        // meanwhile, the callback runs inline here (this is the loop's thread) and cancels at once.
        link.Registration = token.UnsafeRegister(static s => ((Canceller)s!).OnToken(), link);
        return link;
    }

    /// <summary>On the loop: cancels <paramref name="target"/> as <paramref name="token"/>'s doing (its
    /// cancellation exception will carry the token); false if it was done already.</summary>
    internal static bool CancelWith(Future target, CancellationToken token)
    {
        if (target.Done) return false;
        s_tokens.AddOrUpdate(target, new StrongBox<CancellationToken>(token));
        s_any = true;
        if (target.Cancel()) return true;
        s_tokens.Remove(target);
        return false;
    }

    /// <summary>Runs <paramref name="action"/> on <paramref name="loop"/> when the token fires (marshalled;
    /// a closed loop is ignored): for operations whose cancel is more than one future's.</summary>
    internal static CancellationTokenRegistration OnLoopWhenFired<TState>(EventLoop loop, CancellationToken token, Action<TState> action, TState state)
    {
        Interlocked.Increment(ref s_live);
        return token.UnsafeRegister(static s =>
        {
            var (loop, action, state) = ((EventLoop, Action<TState>, TState))s!;
            try
            {
                loop.InvokeOnLoop(action, state);
            }
            catch (EventLoopException)
            {
            }
        }, (loop, action, state));
    }

    /// <summary>Disposes what <see cref="OnLoopWhenFired"/> made (once).</summary>
    internal static void Release(ref CancellationTokenRegistration registration)
    {
        if (registration.Equals(default(CancellationTokenRegistration))) return;
        registration.Unregister();
        registration = default;
        Interlocked.Decrement(ref s_live);
    }

    internal sealed class Canceller(Future target, CancellationToken token)
    {
        internal CancellationTokenRegistration Registration;
        private int _disposed;

        internal void OnToken()
        {
            try
            {
                target.Loop.InvokeOnLoop(static c => CancelWith(c.Target, c.Token), this);
            }
            catch (EventLoopException)
            {
                // The loop is closed: nothing waits on it any more, and the token's owner must not see an error.
            }
        }

        private Future Target => target;
        private CancellationToken Token => token;

        internal void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            // Not waiting for a callback in flight (Unregister, not Dispose): it only posts to this loop.
            Registration.Unregister();
            Interlocked.Decrement(ref s_live);
        }
    }
}
