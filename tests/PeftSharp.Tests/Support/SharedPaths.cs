namespace PeftSharp.Tests.Support;

/// <summary>Locates ../shared (fixtures, assets) beside the repository root, as CI lays it out.</summary>
public static class SharedPaths
{
    private static readonly Lazy<string> s_root = new(Find);

    public static string Root => s_root.Value;

    public static string Fixtures => Path.Combine(Root, "fixtures");

    public static string Assets => Path.Combine(Root, "assets");

    /// <summary>The repository root (the folder holding PeftSharp.slnx).</summary>
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "PeftSharp.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("repository root (PeftSharp.slnx) not found above " + AppContext.BaseDirectory);
        }
    }

    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    public static string Asset(params string[] parts) => Path.Combine([Assets, .. parts]);

    private static string Find()
    {
        var env = Environment.GetEnvironmentVariable("PEFTSHARP_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(Path.Combine(env, "fixtures")))
        {
            return env;
        }
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "fixtures")))
            {
                return candidate;
            }
            dir = dir.Parent;
        }
        throw new InvalidOperationException("../shared (with fixtures/) not found above " + AppContext.BaseDirectory + "; set PEFTSHARP_SHARED");
    }
}
