using PeftSharp.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models;

/// <summary>
/// Strict name-for-name loading of a Hugging Face checkpoint into a <see cref="PretrainedModel"/>. Everything is
/// validated from the headers (names, shapes) before the first parameter is written, so a failed load leaves the model
/// untouched; then each tensor is read straight into its parameter (peak memory ≈ the model).
/// </summary>
internal static class CheckpointLoader
{
    /// <summary>Heads transformers' task classes add; a checkpoint of another head may drop them when the model gets a new head.</summary>
    private static readonly string[] s_headNames = ["lm_head", "score", "classifier"];

    private const int MaxNamesInMessage = 12;

    public static LoadReport Load(PretrainedModel model, HfCheckpoint checkpoint, ModelLoadOptions options)
    {
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in model.named_parameters())
        {
            parameters[name] = p;
        }
        foreach (var (name, b) in model.named_buffers())
        {
            parameters[name] = b;
        }

        var mapping = MapKeys(model, checkpoint, parameters, options, out var ignored, out var unexpected);
        var loadedNames = new HashSet<string>(mapping.Keys, StringComparer.Ordinal);
        var missing = parameters.Keys.Where(n => !loadedNames.Contains(n)).ToList();
        var newHead = new List<string>();
        if (options.AllowNewHead)
        {
            newHead = missing.Where(n => model.OutputHeadNames.Any(h => n.StartsWith(h + ".", StringComparison.Ordinal))).ToList();
            missing = missing.Except(newHead).ToList();
        }

        var problems = new List<string>();
        if (missing.Count > 0)
        {
            problems.Add($"missing tensors: {List(missing)}");
        }
        if (unexpected.Count > 0)
        {
            problems.Add($"unexpected tensors (no such parameter in {model.Architecture}): {List(unexpected)}");
        }
        foreach (var (name, key) in mapping)
        {
            var stored = checkpoint.Shape(key);
            var expected = parameters[name].shape;
            if (!stored.SequenceEqual(expected))
            {
                var target = name == key ? "" : $" (model parameter '{name}')";
                problems.Add($"'{key}' is [{string.Join(", ", stored)}] in the checkpoint but [{string.Join(", ", expected)}] in the model{target}");
            }
        }
        if (problems.Count > 0)
        {
            var hint = missing.Count > 0 && newHead.Count == 0 && missing.All(n => model.OutputHeadNames.Any(h => n.StartsWith(h + ".", StringComparison.Ordinal)))
                ? " (set ModelLoadOptions.AllowNewHead to start a new head)"
                : "";
            // The first few are enough to see the pattern (a wrong hidden_size lists every tensor otherwise).
            const int Shown = 4;
            var listed = string.Join("; ", problems.Take(Shown)) + (problems.Count > Shown ? $"; and {problems.Count - Shown} more" : "");
            throw new ModelMismatchException($"{checkpoint.Folder}: checkpoint does not fit {model.Architecture}: {listed}{hint}");
        }

        using (torch.no_grad())
        {
            foreach (var (name, key) in mapping)
            {
                // Straight into the parameter: no temporary copy of the tensor (it would add the largest tensor, the
                // embedding, to the peak; with a dtype conversion twice over).
                checkpoint.ReadInto(key, parameters[name]);
            }
        }
        return new LoadReport(checkpoint.Folder, mapping.Count, newHead, ignored);
    }

    /// <summary>
    /// Model name → checkpoint key. transformers' base-model-prefix rule: a checkpoint without the prefix loaded into a
    /// model with a head gets the prefix added; one with the prefix loaded into the bare base model gets it stripped
    /// (its other keys are another model's head and are ignored, as transformers only warns about them).
    /// </summary>
    private static Dictionary<string, string> MapKeys(
        PretrainedModel model,
        HfCheckpoint checkpoint,
        Dictionary<string, Tensor> parameters,
        ModelLoadOptions options,
        out List<string> ignored,
        out List<string> unexpected)
    {
        var prefix = model.BaseModelPrefix + ".";
        var checkpointHasPrefix = checkpoint.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var modelHasPrefix = parameters.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var addPrefix = !checkpointHasPrefix && modelHasPrefix;
        var stripPrefix = checkpointHasPrefix && !modelHasPrefix;

        var mapping = new Dictionary<string, string>(StringComparer.Ordinal);
        ignored = [];
        unexpected = [];
        foreach (var key in checkpoint.Keys.Order(StringComparer.Ordinal))
        {
            string name;
            if (addPrefix && parameters.ContainsKey(prefix + key))
            {
                name = prefix + key;
            }
            else if (stripPrefix)
            {
                if (!key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    ignored.Add(key);
                    continue;
                }
                name = key[prefix.Length..];
            }
            else
            {
                name = key;
            }

            if (parameters.ContainsKey(name))
            {
                mapping[name] = key;
            }
            else if (model.IsIgnorableCheckpointKey(name)
                || (options.AllowNewHead && s_headNames.Any(h => name.StartsWith(h + ".", StringComparison.Ordinal))))
            {
                ignored.Add(key);
            }
            else
            {
                unexpected.Add(key);
            }
        }
        return mapping;
    }

    private static string List(IReadOnlyCollection<string> names)
    {
        var shown = string.Join(", ", names.Take(MaxNamesInMessage).Select(n => $"'{n}'"));
        return names.Count > MaxNamesInMessage ? $"{shown} and {names.Count - MaxNamesInMessage} more" : shown;
    }
}
