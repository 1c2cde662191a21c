using System.Text.Json;
using PeftSharp.IO.Safetensors;
using TorchSharp;

namespace PeftSharp.IO;

/// <summary>
/// The weights of a Hugging Face model folder, as transformers' <c>from_pretrained</c> finds them: a single
/// <c>model.safetensors</c>, or shards listed by <c>model.safetensors.index.json</c> (its <c>weight_map</c>: tensor name
/// → shard file name). Pickle checkpoints (<c>pytorch_model.bin</c>, <c>*.bin</c>, <c>*.pt</c>, <c>*.pth</c>) are never
/// unpickled: a folder with only those is refused with a <see cref="PeftException"/> saying how to convert it.
/// Each tensor is read lazily from its shard.
/// </summary>
public sealed class HfCheckpoint : IDisposable
{
    /// <summary>transformers' <c>SAFE_WEIGHTS_NAME</c>.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>transformers' <c>SAFE_WEIGHTS_INDEX_NAME</c>.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private static readonly string[] s_pickleExtensions = [".bin", ".pt", ".pth"];

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _fileOf;

    private HfCheckpoint(string folder, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> fileOf)
    {
        Folder = folder;
        _files = files;
        _fileOf = fileOf;
    }

    /// <summary>Opens the weights of <paramref name="folder"/>, validating every shard's header (not its data).</summary>
    public static HfCheckpoint Open(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
        {
            throw new PeftException($"{folder}: model folder not found");
        }
        var index = System.IO.Path.Combine(folder, IndexFileName);
        if (File.Exists(index))
        {
            return OpenSharded(folder, index);
        }
        var single = System.IO.Path.Combine(folder, SingleFileName);
        if (File.Exists(single))
        {
            var file = SafetensorsFile.Open(single);
            return new HfCheckpoint(folder, [file], file.Entries.ToDictionary(e => e.Name, _ => file, StringComparer.Ordinal));
        }
        var pickles = Directory.EnumerateFiles(folder)
            .Where(f => s_pickleExtensions.Contains(System.IO.Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Select(System.IO.Path.GetFileName)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (pickles.Count > 0)
        {
            throw new PeftException(
                $"{folder}: has only pickle weights ({string.Join(", ", pickles)}), which PeftSharp does not load (unpickling can run arbitrary code). " +
                "Convert them to safetensors first, e.g. in Python: AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)");
        }
        var others = Directory.EnumerateFiles(folder, "*.safetensors").Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var seen = others.Count > 0 ? $" (found {string.Join(", ", others)}; shards need their index file)" : "";
        throw new PeftException($"{folder}: no {SingleFileName} or {IndexFileName} found{seen}");
    }

    /// <summary>The folder given to <see cref="Open"/>.</summary>
    public string Folder { get; }

    /// <summary>Every tensor name of the checkpoint.</summary>
    public IReadOnlyCollection<string> Keys => _fileOf.Keys;

    /// <summary>The opened safetensors files (one, or one per shard).</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>True if the checkpoint holds <paramref name="key"/> (exact, case-sensitive).</summary>
    public bool Contains(string key) => _fileOf.ContainsKey(key);

    /// <summary>The header entry of <paramref name="key"/> (dtype, shape, offsets within its file).</summary>
    public SafetensorsEntry Entry(string key) => FileOf(key)[key];

    /// <summary>The shape of <paramref name="key"/> as stored (a copy).</summary>
    public long[] Shape(string key) => (long[])Entry(key).Shape.Clone();

    /// <summary>Reads <paramref name="key"/>, converted to <paramref name="dtype"/> and moved to <paramref name="device"/> when given; the caller owns it.</summary>
    public torch.Tensor Read(string key, torch.ScalarType? dtype = null, torch.Device? device = null) =>
        FileOf(key).Read(key, dtype, device);

    /// <summary>Reads <paramref name="key"/> into <paramref name="target"/> (same shape) without a second full-size copy; see <see cref="SafetensorsFile.ReadInto(string, torch.Tensor)"/>.</summary>
    public void ReadInto(string key, torch.Tensor target) => FileOf(key).ReadInto(key, target);

    public void Dispose()
    {
        foreach (var file in _files)
        {
            file.Dispose();
        }
    }

    private SafetensorsFile FileOf(string key) =>
        _fileOf.TryGetValue(key, out var file)
            ? file
            : throw new ModelMismatchException($"{Folder}: checkpoint has no tensor '{key}'");

    private static HfCheckpoint OpenSharded(string folder, string index)
    {
        var weightMap = ReadWeightMap(index);
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    var shardPath = ShardPath(folder, index, key, shardName);
                    if (!File.Exists(shardPath))
                    {
                        throw new PeftException($"{index}: weight_map puts '{key}' in shard '{shardName}', but {shardPath} does not exist");
                    }
                    shard = SafetensorsFile.Open(shardPath);
                    shards.Add(shardName, shard);
                }
                if (!shard.Contains(key))
                {
                    throw new PeftException($"{index}: weight_map puts '{key}' in shard '{shardName}', which has no such tensor");
                }
                fileOf.Add(key, shard);
            }
        }
        catch
        {
            foreach (var shard in shards.Values)
            {
                shard.Dispose();
            }
            throw;
        }
        return new HfCheckpoint(folder, [.. shards.Values], fileOf);
    }

    private static List<KeyValuePair<string, string>> ReadWeightMap(string index)
    {
        using var doc = JsonFiles.ReadDocument(index);
        if (doc.RootElement.ValueKind != JsonValueKind.Object
            || !doc.RootElement.TryGetProperty("weight_map", out var map)
            || map.ValueKind != JsonValueKind.Object)
        {
            throw new ConfigException($"{index}: expected an object with a \"weight_map\" object (tensor name -> shard file)");
        }
        var entries = new List<KeyValuePair<string, string>>();
        foreach (var property in map.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
            {
                throw new ConfigException($"{index}: weight_map value of '{property.Name}' must be a shard file name, found {property.Value.ValueKind}");
            }
            entries.Add(new(property.Name, property.Value.GetString()!));
        }
        return entries;
    }

    private static string ShardPath(string folder, string index, string key, string shardName)
    {
        // A shard outside the folder (absolute path or "..") would make a downloaded index read arbitrary files.
        var root = System.IO.Path.GetFullPath(folder);
        var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, shardName));
        if (System.IO.Path.IsPathRooted(shardName) || !full.StartsWith(root.TrimEnd(System.IO.Path.DirectorySeparatorChar) + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ConfigException($"{index}: weight_map puts '{key}' in '{shardName}', which is not a file inside the model folder");
        }
        return full;
    }
}
