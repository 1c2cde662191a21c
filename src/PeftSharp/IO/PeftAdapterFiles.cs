using PeftSharp.Core;
using PeftSharp.IO.Safetensors;
using TorchSharp;

namespace PeftSharp.IO;

/// <summary>
/// Reads and writes adapters in Hugging Face PEFT's folder format: <c>adapter_config.json</c> +
/// <c>adapter_model.safetensors</c>; the adapter named <c>default</c> in the folder itself, any other in a subfolder of
/// its name (as PEFT's <c>save_pretrained</c>). Loading validates every name and shape before the model keeps anything.
/// </summary>
public static class PeftAdapterFiles
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string DefaultAdapterName = "default";

    private static readonly Dictionary<string, string> s_metadata = new() { ["format"] = "pt" };

    /// <summary>Saves the given adapters (all when none are named). Each file is written atomically.</summary>
    public static void Save(PeftModel model, string directory, params string[] adapterNames)
    {
        var names = adapterNames.Length > 0 ? adapterNames : [.. model.Configs.Keys];
        foreach (var name in names)
        {
            if (model.AdapterLayers().FirstOrDefault(l => l.Layer.AdapterNames.Contains(name) && l.Layer.IsRankPadded(name)) is { Layer: not null } padded)
            {
                throw new PeftException($"adapter '{name}' is rank-padded for hot-swapping in '{padded.Name}' (PrepareForHotSwap); its padded tensors do not match its config, so it is not saved");
            }
            var folder = name == DefaultAdapterName ? directory : Path.Combine(directory, name);
            var tensors = model.AdapterStateDict(name)
                .Select(kv => new KeyValuePair<string, torch.Tensor>(kv.Key, kv.Value))
                .ToList();
            Save(folder, model.ConfigForSave(name), tensors, model.Registry);
        }
    }

    /// <summary>
    /// Writes one adapter folder from a config and its tensors under PEFT's saved names (<c>base_model.model.…</c>), with
    /// no model: for tools that transform saved adapters (compression, conversion). Each file is written atomically.
    /// </summary>
    public static void Save(string directory, AdapterConfig config, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, MethodRegistry? registry = null)
    {
        Directory.CreateDirectory(directory);
        SafetensorsWriter.Save(Path.Combine(directory, WeightsFileName), tensors, s_metadata);
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFileName), (registry ?? MethodRegistry.Default).SerializeConfig(config));
    }

    /// <summary>Reads only the config of an adapter folder, parsed and validated by its method.</summary>
    public static AdapterConfig ReadConfig(string directory, MethodRegistry? registry = null)
    {
        var path = ConfigPath(directory);
        return (registry ?? MethodRegistry.Default).ParseConfig(JsonFiles.ReadObject(path).ToJsonString(), path);
    }

    /// <summary>The config's <c>peft_type</c> and raw keys, for tools that describe adapters of any PEFT method.</summary>
    public static (string PeftType, System.Text.Json.Nodes.JsonObject Json) ReadConfigJson(string directory)
    {
        var path = ConfigPath(directory);
        var obj = JsonFiles.ReadObject(path);
        if (obj["peft_type"] is not System.Text.Json.Nodes.JsonValue v || !v.TryGetValue<string>(out var type))
        {
            throw new ConfigException($"{path}: \"peft_type\" is missing or not a string");
        }
        return (type, obj);
    }

    /// <summary>
    /// The adapter's <c>base_model_name_or_path</c> as a model folder: absolute as given, else relative to the adapter folder
    /// or the nearest folder above it where it exists (PEFT fixtures store it relative to their root). Errors end with
    /// <paramref name="flag"/>, the CLI option that names the base model instead.
    /// </summary>
    public static string ResolveBaseModel(string adapterDir, string flag)
    {
        var name = ReadConfig(adapterDir).BaseModelNameOrPath;
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new PeftException($"{Path.Combine(adapterDir, ConfigFileName)} has no base_model_name_or_path; give {flag} DIR");
        }
        if (Path.IsPathRooted(name))
        {
            return IsModelFolder(name) ? name : throw new PeftException(
                $"base model '{name}' (base_model_name_or_path of {adapterDir}) is not a model folder (no config.json); give {flag} DIR");
        }
        for (var dir = new DirectoryInfo(adapterDir); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.GetFullPath(Path.Combine(dir.FullName, name));
            if (IsModelFolder(candidate))
            {
                return candidate;
            }
        }
        throw new PeftException(
            $"base model '{name}' (base_model_name_or_path of {adapterDir}) was found neither beside the adapter nor in a folder above it; give {flag} DIR");
    }

    private static bool IsModelFolder(string path) => File.Exists(Path.Combine(path, "config.json"));

    private static string ConfigPath(string directory)
    {
        var path = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(path))
        {
            throw new PeftException($"{directory}: no {ConfigFileName} (is this a PEFT adapter folder?)");
        }
        return path;
    }

    /// <summary>Opens the weights file of an adapter folder (never a pickle: a .bin-only adapter is refused).</summary>
    public static SafetensorsFile OpenWeights(string directory)
    {
        var path = Path.Combine(directory, WeightsFileName);
        if (!File.Exists(path))
        {
            var bin = Path.Combine(directory, "adapter_model.bin");
            throw new PeftException(File.Exists(bin)
                ? $"{bin}: pickled PyTorch weights are not read (unpickling runs arbitrary code); convert the adapter to safetensors"
                : $"{directory}: no {WeightsFileName}");
        }
        return SafetensorsFile.Open(path);
    }

    /// <summary>
    /// Loads an adapter folder into <paramref name="model"/> as <paramref name="adapterName"/>. Names and shapes are
    /// checked against the model before the adapter is kept; on any error the model is left as it was.
    /// </summary>
    public static void Load(PeftModel model, string directory, string adapterName = DefaultAdapterName, bool isTrainable = false)
    {
        var config = ReadConfig(directory, model.Registry);
        using var file = OpenWeights(directory);
        model.AddAdapter(adapterName, config, afterInject: () => CopyInto(model, adapterName, file));
        if (!isTrainable)
        {
            model.InferenceMode = true;
        }
    }

    /// <summary>Wraps a base model and loads an adapter into it (PEFT's <c>PeftModel.from_pretrained</c>).</summary>
    public static PeftModel FromPretrained(torch.nn.Module baseModel, string directory, string adapterName = DefaultAdapterName, bool isTrainable = false, MethodRegistry? registry = null)
    {
        var model = PeftModel.Wrap(baseModel, registry);
        Load(model, directory, adapterName, isTrainable);
        return model;
    }

    /// <summary>
    /// Replaces the weights of the loaded adapter <paramref name="adapterName"/> with those of the adapter folder
    /// <paramref name="directory"/>, in place (PEFT's <c>hotswap_adapter</c>); see <see cref="PeftModel.HotSwapAdapter"/>.
    /// Errors start with the folder and name the tensor (and so the module) that does not fit.
    /// </summary>
    public static void HotSwap(PeftModel model, string directory, string adapterName = DefaultAdapterName)
    {
        var config = ReadConfig(directory, model.Registry);
        using var file = OpenWeights(directory);
        using var scope = torch.NewDisposeScope();
        // Read in the file's own dtype on the CPU; the copy into the allocated tensors converts dtype and device.
        var tensors = file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name), StringComparer.Ordinal);
        model.HotSwapAdapter(adapterName, config, tensors, directory);
    }

    private static void CopyInto(PeftModel model, string adapterName, SafetensorsFile file)
    {
        var expected = model.AdapterStateDict(adapterName);
        var missing = expected.Keys.Where(k => !file.Contains(k) && !PeftModel.IsOptionalKey(k)).ToList();
        if (missing.Count > 0)
        {
            throw new ModelMismatchException(
                $"{file.Path}: {missing.Count} adapter tensor(s) the model expects are missing, e.g. '{missing[0]}'" +
                (missing.Count > 1 ? $", '{missing[1]}'" : ""));
        }
        var unexpected = file.Entries.Select(e => e.Name).Where(n => !expected.ContainsKey(n)).ToList();
        if (unexpected.Count > 0)
        {
            throw new ModelMismatchException(
                $"{file.Path}: {unexpected.Count} tensor(s) match no adapted module of the model, e.g. '{unexpected[0]}'" +
                $" (the adapter targets {model.Configs[adapterName].TargetModules})");
        }
        foreach (var (key, p) in expected)
        {
            if (file.Contains(key) && !file[key].Shape.SequenceEqual(p.shape))
            {
                throw new ModelMismatchException(
                    $"{file.Path}: '{key}' is [{string.Join(", ", file[key].Shape)}] but the model's tensor is [{string.Join(", ", p.shape)}]");
            }
        }
        using var _ = torch.no_grad();
        foreach (var (key, p) in expected)
        {
            if (file.Contains(key))
            {
                using var t = file.Read(key, p.dtype, p.device);
                p.copy_(t);
            }
        }
    }
}
