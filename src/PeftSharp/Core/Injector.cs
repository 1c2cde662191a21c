using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>A model that names its output heads, which PEFT's <c>all-linear</c> leaves out (<c>lm_head</c>, <c>score</c>, <c>classifier</c>).</summary>
public interface IHasOutputHeads
{
    IReadOnlyList<string> OutputHeadNames { get; }
}

/// <summary>
/// Decides which modules an adapter config targets, by PEFT's rules (<c>check_target_module_exists</c>): suffix list or
/// full-match regex, <c>all-linear</c>, <c>exclude_modules</c>, <c>layers_to_transform</c> + <c>layers_pattern</c>.
/// One function, used for injection and loading alike.
/// </summary>
public static class Injector
{
    /// <summary>Output heads assumed when the model does not name its own (<see cref="IHasOutputHeads"/>).</summary>
    private static readonly string[] s_fallbackHeads = ["lm_head", "score", "classifier"];

    /// <summary>Qualified names of the modules the config adapts, in model order (adapter internals are not candidates).</summary>
    public static IReadOnlyList<string> FindTargets(nn.Module model, AdapterConfig config)
    {
        var candidates = Candidates(model).ToList();
        var targets = config.TargetModules!;
        IEnumerable<(string Name, nn.Module Module)> matched;
        if (targets.IsAllLinear)
        {
            var heads = model is IHasOutputHeads h ? h.OutputHeadNames : s_fallbackHeads;
            matched = candidates.Where(c => BaseLayer.IsLinearLike(Unwrapped(c.Module))
                && !heads.Any(head => c.Name == head || c.Name.EndsWith("." + head, StringComparison.Ordinal)));
        }
        else
        {
            matched = candidates.Where(c => targets.Matches(c.Name));
        }
        matched = matched.Where(c => config.ExcludeModules is null || !config.ExcludeModules.Matches(c.Name));
        if (config.LayersToTransform is { Count: > 0 } layers)
        {
            matched = matched.Where(c => LayerIndex(c.Name, config.LayersPattern) is int i && layers.Contains(i));
        }
        var result = matched.Select(c => c.Name).ToList();
        if (result.Count == 0)
        {
            var wanted = targets.Names?.FirstOrDefault() ?? targets.Pattern ?? "";
            var nearest = ModuleTree.Nearest(candidates.Where(c => BaseLayer.TryCreate(Unwrapped(c.Module)) is not null).Select(c => c.Name), wanted);
            throw new PeftException(
                $"target_modules {targets} matched no module of {model.GetType().Name}" +
                (config.LayersToTransform is null ? "" : $" in layers [{string.Join(", ", config.LayersToTransform)}]") +
                $"; nearest module names: {string.Join(", ", nearest)}");
        }
        return result;
    }

    /// <summary>Names of the modules <c>modules_to_save</c> selects (exact name or dotted suffix).</summary>
    public static IReadOnlyList<string> FindModulesToSave(nn.Module model, AdapterConfig config)
    {
        if (config.ModulesToSave is not { Count: > 0 } names)
        {
            return [];
        }
        return Candidates(model)
            .Where(c => names.Any(n => c.Name == n || c.Name.EndsWith("." + n, StringComparison.Ordinal)))
            .Select(c => c.Name)
            .ToList();
    }

    /// <summary>
    /// The layer index in a qualified name, as PEFT finds it: <c>.&lt;pattern&gt;.&lt;digits&gt;.</c> for the given patterns,
    /// otherwise the last <c>.&lt;word&gt;.&lt;digits&gt;.</c>.
    /// </summary>
    public static int? LayerIndex(string name, IReadOnlyList<string>? layersPattern)
    {
        if (layersPattern is not { Count: > 0 })
        {
            var m = Regex.Match(name, @"^(?:.*\.)?[^.]*\.(\d+)\.");
            return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
        }
        foreach (var pattern in layersPattern)
        {
            var m = Regex.Match(name, @"^(?:.*\.)?" + pattern + @"\.(\d+)\.");
            if (m.Success)
            {
                return int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return null;
    }

    /// <summary>Every module of the user's model, with adapter layers standing for the module they wrap.</summary>
    internal static IEnumerable<(string Name, nn.Module Module)> Candidates(nn.Module model)
    {
        var inside = new List<string>();
        foreach (var (name, module) in model.named_modules())
        {
            if (name.Length == 0 || inside.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
            {
                continue;
            }
            if (module is AdapterLayer or ModulesToSaveWrapper)
            {
                inside.Add(name + ".");
            }
            yield return (name, module);
        }
    }

    internal static nn.Module Unwrapped(nn.Module module) => module switch
    {
        AdapterLayer a => a.Base.Module,
        ModulesToSaveWrapper w => w.Original,
        _ => module,
    };
}
