using System.CommandLine;
using System.Globalization;
using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Merging;
using PeftSharp.Models;

namespace PeftSharp.Cli.Commands;

/// <summary>
/// <c>peft merge-adapters --combination TYPE --weights W1,W2 … --out DIR A B …</c>: merges adapter folders into one
/// PEFT-format LoRA adapter, with PEFT's <c>add_weighted_adapter</c> combination types or LoRA-LEGO (<c>lego</c>).
/// </summary>
internal static class MergeAdaptersCommand
{
    private const string Lego = "lego";

    public static Command Create()
    {
        var sources = new Argument<DirectoryInfo[]>("adapters") { Description = "The source adapter folders, in the order of --weights.", Arity = ArgumentArity.OneOrMore };
        var combination = new Option<string>("--combination")
        {
            Description = $"PEFT combination_type ({string.Join(", ", CombinationTypes.PeftNames)}) or '{Lego}' (LoRA-LEGO).",
            DefaultValueFactory = _ => "svd",
        };
        var weights = new Option<string>("--weights") { Description = "One weight per source, comma-separated (e.g. 0.6,0.4); negative weights subtract.", Required = true };
        var density = new Option<double?>("--density") { Description = "Fraction of entries kept by ties, dare_* and magnitude_prune* (required by them)." };
        var svdRank = new Option<int?>("--svd-rank") { Description = "Rank of the svd kinds' result (default: the largest source rank)." };
        var svdClamp = new Option<double?>("--svd-clamp") { Description = "Quantile in [0, 1] at which the svd kinds clamp their factors." };
        var majority = new Option<string>("--majority-sign") { Description = "TIES sign election: total or frequency.", DefaultValueFactory = _ => "total" };
        var clusters = new Option<int?>("--clusters") { Description = "LoRA-LEGO: clusters per module, the merged rank (required by --combination lego)." };
        var seed = new Option<long?>("--seed") { Description = "Seed of DARE's masks or LoRA-LEGO's k-means++ (LEGO default 0)." };
        var baseModel = new Option<DirectoryInfo?>("--base-model") { Description = "The base model folder (default: the sources' base_model_name_or_path, looked up beside the first adapter and in the folders above it)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the merged adapter to (adapter_config.json + adapter_model.safetensors).", Required = true };
        var device = CommonOptions.Device();
        var cmd = new Command("merge-adapters", "Merge LoRA adapters into one (PEFT's add_weighted_adapter, or LoRA-LEGO) and save it in PEFT's format.")
        {
            sources, combination, weights, density, svdRank, svdClamp, majority, clusters, seed, baseModel, output, device,
        };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var folders = parse.GetValue(sources) ?? [];
            var w = ParseWeights(parse.GetValue(weights)!, folders.Length);
            var kind = parse.GetValue(combination)!;
            var dev = CommonOptions.ParseDevice(parse.GetValue(device));
            // Options are checked before any model is loaded.
            Func<PeftModel, List<string>, CombinedAdapter> merge;
            if (kind == Lego)
            {
                var lego = LegoOptions(parse, clusters, seed, density, svdRank, svdClamp);
                lego.Validate();
                merge = (p, n) => LoraLego.Combine(p, n, w, lego);
            }
            else
            {
                var options = new CombinationOptions
                {
                    Type = CombinationTypes.Parse(kind),
                    Density = parse.GetValue(density),
                    SvdRank = parse.GetValue(svdRank),
                    SvdClamp = parse.GetValue(svdClamp),
                    MajoritySign = ParseMajority(parse.GetValue(majority)!),
                    Seed = parse.GetValue(seed),
                }.WithoutClusters(parse.GetValue(clusters));
                options.Validate();
                merge = (p, n) => AdapterMerging.Combine(p, n, w, options);
            }
            var baseDir = parse.GetValue(baseModel)?.FullName ?? PeftAdapterFiles.ResolveBaseModel(folders[0].FullName, "--base-model");
            using var model = AutoModel.FromPretrained(baseDir, new ModelLoadOptions { Device = dev });
            var peft = PeftModel.Wrap(model);
            var names = new List<string>();
            for (var i = 0; i < folders.Length; i++)
            {
                names.Add("source" + i);
                PeftAdapterFiles.Load(peft, folders[i].FullName, names[i]);
            }
            using var combined = merge(peft, names);
            // The merged adapter replaces its sources in the model, which is then saved as PEFT saves an adapter named 'default'.
            foreach (var n in names)
            {
                peft.DeleteAdapter(n);
            }
            combined.AddTo(peft, PeftAdapterFiles.DefaultAdapterName);
            var outDir = parse.GetValue(output)!.FullName;
            PeftAdapterFiles.Save(peft, outDir, PeftAdapterFiles.DefaultAdapterName);
            var terms = string.Join(" + ", folders.Select((f, i) => $"{w[i].ToString(CultureInfo.InvariantCulture)}·{f.Name}"));
            Console.WriteLine($"wrote {outDir}: {kind} of {terms}; LORA r={combined.Config.Rank} lora_alpha={combined.Config.Alpha.ToString(CultureInfo.InvariantCulture)}, {combined.Factors.Count} modules");
            return 0;
        }));
        return cmd;
    }

    private static LegoOptions LegoOptions(ParseResult parse, Option<int?> clusters, Option<long?> seed, Option<double?> density, Option<int?> svdRank, Option<double?> svdClamp)
    {
        if (parse.GetValue(density) is not null || parse.GetValue(svdRank) is not null || parse.GetValue(svdClamp) is not null)
        {
            throw new PeftException($"--density, --svd-rank and --svd-clamp do not apply to --combination {Lego} (its merged rank is --clusters)");
        }
        var k = parse.GetValue(clusters) ?? throw new PeftException($"--combination {Lego} needs --clusters K (the merged rank)");
        return new LegoOptions { Clusters = k, Seed = parse.GetValue(seed) ?? 0 };
    }

    private static CombinationOptions WithoutClusters(this CombinationOptions options, int? clusters) =>
        clusters is null ? options : throw new PeftException($"--clusters applies only to --combination {Lego}");

    private static double[] ParseWeights(string text, int count)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var result = new double[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out result[i]) || !double.IsFinite(result[i]))
            {
                throw new PeftException($"--weights: '{parts[i]}' is not a number (give e.g. 0.6,0.4)");
            }
        }
        if (result.Length != count)
        {
            throw new PeftException($"--weights has {result.Length} value(s) for {count} adapter folder(s); give one weight per adapter");
        }
        return result;
    }

    private static MajoritySignMethod ParseMajority(string text) => text switch
    {
        "total" => MajoritySignMethod.Total,
        "frequency" => MajoritySignMethod.Frequency,
        _ => throw new PeftException($"--majority-sign must be total or frequency, got '{text}'"),
    };
}
