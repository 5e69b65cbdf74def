using System.Reflection;
using System.Runtime.Loader;
using System.Text.Json;
using Tulip.Executors.Protocol;

namespace Tulip.Worker;

/// <summary>
/// A worker of Tulip's ProcessPoolExecutor (CPython's multiprocessing "spawn" re-runs the main module; here
/// a small host runs instead): it reads requests from stdin, loads the caller's assembly by path, calls the
/// static method named there with the arguments deserialised to its parameter types, and writes the
/// result or the exception to stdout. Stdout carries only frames: whatever the user's code prints goes to
/// stderr. It exits when stdin closes (the pool's shutdown).
/// </summary>
internal static class Program
{
    private static readonly Dictionary<string, Assembly> s_assemblies = new();
    private static readonly Dictionary<(string, int), MethodInfo> s_methods = new();

    private static int Main()
    {
        var input = Console.OpenStandardInput();
        var output = Console.OpenStandardOutput();
        // The protocol owns stdout: user code's Console.Out goes to stderr instead.
        Console.SetOut(Console.Error);
        AssemblyLoadContext.Default.Resolving += ResolveBesideCaller;
        while (WorkerFrames.Read(input) is { } request)
        {
            WorkerFrames.Write(output, Handle(request));
        }

        return 0;
    }

    private static byte[] Handle(byte[] request)
    {
        long id = 0;
        try
        {
            using var doc = JsonDocument.Parse(request);
            var root = doc.RootElement;
            id = root.GetProperty("id").GetInt64();
            var method = Find(root.GetProperty("assembly").GetString()!, root.GetProperty("token").GetInt32());
            var ps = method.GetParameters();
            var argsJson = root.GetProperty("args");
            var args = new object?[ps.Length];
            int i = 0;
            foreach (var a in argsJson.EnumerateArray())
            {
                args[i] = a.Deserialize(ps[i].ParameterType);
                i++;
            }

            object? result;
            try
            {
                result = method.Invoke(null, BindingFlags.DoNotWrapExceptions, null, args, null);
            }
            catch (Exception e)
            {
                return Failure(id, e);
            }

            var returnType = method.ReturnType == typeof(void) ? typeof(object) : method.ReturnType;
            return WorkerFrames.Json(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteBoolean("ok", true);
                w.WritePropertyName("result");
                JsonSerializer.Serialize(w, result, returnType);
                w.WriteEndObject();
            });
        }
        catch (Exception e)
        {
            // Not the user's method failing: the request could not be served (its result did not
            // serialise, the method was not found). Still an answer, so the pool is not broken.
            return Failure(id, e);
        }
    }

    private static byte[] Failure(long id, Exception e) => WorkerFrames.Json(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("id", id);
        w.WriteBoolean("ok", false);
        w.WriteString("type", e.GetType().FullName);
        w.WriteString("message", e.Message);
        w.WriteString("stack", e.StackTrace ?? "");
        w.WriteString("text", e.ToString());
        w.WriteEndObject();
    });

    private static MethodInfo Find(string assemblyPath, int token)
    {
        if (s_methods.TryGetValue((assemblyPath, token), out var m)) return m;
        if (!s_assemblies.TryGetValue(assemblyPath, out var asm))
        {
            asm = Assembly.LoadFrom(assemblyPath);
            s_assemblies[assemblyPath] = asm;
        }

        m = asm.ManifestModule.ResolveMethod(token) as MethodInfo
            ?? throw new MissingMethodException($"no method with token {token} in {assemblyPath}");
        s_methods[(assemblyPath, token)] = m;
        return m;
    }

    // The caller's assembly's own references (Tulip, FSharp.Core, its packages) are found beside it.
    private static Assembly? ResolveBesideCaller(AssemblyLoadContext context, AssemblyName name)
    {
        foreach (var path in s_assemblies.Keys)
        {
            var candidate = Path.Combine(Path.GetDirectoryName(path)!, name.Name + ".dll");
            if (File.Exists(candidate)) return context.LoadFromAssemblyPath(candidate);
        }

        return null;
    }
}
