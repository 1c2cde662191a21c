using PeftSharp.Tests.Support;

namespace PeftSharp.Tests.Data;

/// <summary>Hand-written data files in a fresh temp folder (deleted on dispose), and the shared real data sets.</summary>
internal sealed class DataTestFiles : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "peftsharp-data-" + Guid.NewGuid().ToString("N"));

    public DataTestFiles() => Directory.CreateDirectory(_root);

    public static string Shared(string folder, string file) => SharedPaths.Asset("data", folder, file);

    /// <summary>Writes <paramref name="content"/> exactly (no newline translation) as UTF-8 without BOM.</summary>
    public string Write(string name, string content)
    {
        var path = Path.Combine(_root, name);
        File.WriteAllText(path, content, new System.Text.UTF8Encoding(false));
        return path;
    }

    public string WriteBytes(string name, byte[] content)
    {
        var path = Path.Combine(_root, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
