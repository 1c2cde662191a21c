using PeftSharp.Core;
using PeftSharp.IO.Safetensors;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// What a LoRA adapter file can be checked against without its base model: every module's A has its B (and the other
/// way round), the two agree on the rank, the rank is the config's <c>r</c> for that module (after <c>rank_pattern</c>),
/// and the module is one the config's <c>target_modules</c> / <c>exclude_modules</c> select. Loading with the base
/// model checks the rest (the in/out sizes).
/// </summary>
public static class LoraFileCheck
{
    private static readonly (string A, string B)[] s_pairs =
        [(".lora_A.weight", ".lora_B.weight"), (".lora_embedding_A", ".lora_embedding_B")];

    /// <summary>Throws a <see cref="ModelMismatchException"/> naming <paramref name="path"/> and the tensor on the first inconsistency.</summary>
    public static void Check(LoraConfig config, IReadOnlyList<SafetensorsEntry> entries, string path)
    {
        var byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        foreach (var e in entries)
        {
            foreach (var (suffixA, suffixB) in s_pairs)
            {
                var isA = e.Name.EndsWith(suffixA, StringComparison.Ordinal);
                if (!isA && !e.Name.EndsWith(suffixB, StringComparison.Ordinal))
                {
                    continue;
                }
                var stem = e.Name[..^(isA ? suffixA : suffixB).Length];
                var partner = stem + (isA ? suffixB : suffixA);
                if (!byName.TryGetValue(partner, out var other))
                {
                    throw new ModelMismatchException($"{path}: tensor '{e.Name}' has no '{partner}' beside it");
                }
                if (!isA)
                {
                    continue;
                }
                var module = stem.StartsWith(PeftModel.NamePrefix, StringComparison.Ordinal) ? stem[PeftModel.NamePrefix.Length..] : stem;
                CheckModule(config, module, e, other, path);
            }
        }
    }

    private static void CheckModule(LoraConfig config, string module, SafetensorsEntry a, SafetensorsEntry b, string path)
    {
        if (a.Shape.Length < 2 || b.Shape.Length < 2)
        {
            throw new ModelMismatchException($"{path}: '{a.Name}' [{string.Join(", ", a.Shape)}] and '{b.Name}' [{string.Join(", ", b.Shape)}] are not LoRA factors");
        }
        var rank = a.Shape[0];
        if (b.Shape[1] != rank)
        {
            throw new ModelMismatchException(
                $"{path}: '{a.Name}' has rank {rank} but '{b.Name}' [{string.Join(", ", b.Shape)}] has {b.Shape[1]} columns");
        }
        var declared = ((LoraConfig)config.ForModule(module)).Rank;
        if (declared != rank)
        {
            throw new ModelMismatchException($"{path}: '{module}' has rank {rank} in its tensors but r = {declared} in the config (rank_pattern included)");
        }
        var targets = config.TargetModules;
        var selected = targets is null || targets.IsAllLinear || targets.Matches(module);
        if (!selected || config.ExcludeModules?.Matches(module) == true)
        {
            throw new ModelMismatchException(
                $"{path}: tensors for '{module}', which the config's target_modules {targets}"
                + (config.ExcludeModules is null ? "" : $" / exclude_modules {config.ExcludeModules}") + " do not select");
        }
    }
}
