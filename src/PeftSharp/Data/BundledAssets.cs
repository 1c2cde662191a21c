namespace PeftSharp.Data;

/// <summary>
/// Finds the repository's <c>assets/</c> folder (the default model and data of <c>peft train</c>): the folder named
/// by the PEFTSHARP_ASSETS environment variable, else the first <c>assets/</c> holding <c>models/</c> and
/// <c>data/</c> found walking up from the running app's folder (works from <c>dotnet run</c>, tests and a built
/// binary inside the clone).
/// </summary>
public static class BundledAssets
{
    /// <summary>The environment variable that points at an assets folder (checked first).</summary>
    public const string EnvironmentVariable = "PEFTSHARP_ASSETS";

    /// <summary>Folder of the default encoder (all-MiniLM-L6-v2, F16 weights) under <c>models/</c>.</summary>
    public const string MiniLmL6V2 = "all-MiniLM-L6-v2";

    /// <summary>Folder of the default causal LM (stories260K) under <c>models/</c>.</summary>
    public const string Stories260K = "stories260K";

    /// <summary>Folder of the UCI sentiment sentences under <c>data/</c>.</summary>
    public const string SentimentSentences = "sentiment_sentences";

    /// <summary>Folder of the TinyStories paragraphs under <c>data/</c>.</summary>
    public const string TinyStories = "tinystories";

    /// <summary>The assets folder, or null when there is none.</summary>
    public static string? TryFindRoot(string? startDirectory = null)
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            return IsAssets(env) ? Path.GetFullPath(env) : null;
        }
        for (var dir = new DirectoryInfo(startDirectory ?? AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "assets");
            if (IsAssets(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    /// <summary>The assets folder.</summary>
    /// <exception cref="PeftException">None was found; the message says where it looked.</exception>
    public static string Root()
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return TryFindRoot() ?? throw new PeftException(!string.IsNullOrEmpty(env)
            ? $"{EnvironmentVariable}={env} is not an assets folder (it needs models/ and data/)"
            : $"no assets/ folder (with models/ and data/) above {AppContext.BaseDirectory}; run from a PeftSharp clone or set {EnvironmentVariable}");
    }

    /// <summary>A bundled model folder, e.g. <c>Model(BundledAssets.MiniLmL6V2)</c>.</summary>
    /// <exception cref="PeftException">No assets folder, or it has no such model.</exception>
    public static string Model(string name) => Existing(Path.Combine(Root(), "models", name));

    /// <summary>A bundled data folder, e.g. <c>Data(BundledAssets.SentimentSentences)</c>.</summary>
    /// <exception cref="PeftException">No assets folder, or it has no such data set.</exception>
    public static string Data(string name) => Existing(Path.Combine(Root(), "data", name));

    private static bool IsAssets(string folder) =>
        Directory.Exists(Path.Combine(folder, "models")) && Directory.Exists(Path.Combine(folder, "data"));

    private static string Existing(string folder) =>
        Directory.Exists(folder) ? folder : throw new PeftException($"{folder}: no such bundled asset");
}
