using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.IO;
using Spectre.Console;

namespace PeftSharp.Cli.Commands;

/// <summary><c>peft inspect ADAPTER_DIR [--json]</c>: method, ranks, alpha, targets, parameter count and tensors of an adapter.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("adapter") { Description = "A PEFT adapter folder (adapter_config.json + adapter_model.safetensors)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of tables." };
        var spectrum = new Option<bool>("--spectrum") { Description = "Also the singular-value spectrum of each module's ΔW (LoRA factors from the file; other methods need --model)." };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Base model folder: lets --spectrum use any method's closed-form ΔW." };
        var cmd = new Command("inspect", "Show an adapter's method, rank(s), alpha, targets, trainable parameter count and tensors.") { dir, json, spectrum, model };
        cmd.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var report = AdapterReport.Read(parse.GetValue(dir)!.FullName);
            if (parse.GetValue(spectrum))
            {
                report = report with { Spectra = SpectrumReader.Read(parse.GetValue(dir)!.FullName, parse.GetValue(model)?.FullName) };
            }
            if (parse.GetValue(json))
            {
                Console.WriteLine(report.ToJson().ToJsonString(CliJson.Options));
            }
            else
            {
                report.Render();
            }
            return 0;
        }));
        return cmd;
    }
}

/// <summary>What <c>inspect</c> reports, read from the files alone (no base model needed).</summary>
internal sealed record AdapterReport(string Folder, string PeftType, string Method, JsonObject ConfigJson, IReadOnlyList<(string Name, string DType, long[] Shape)> Tensors)
{
    public IReadOnlyList<ModuleSpectrum>? Spectra { get; init; }

    public long TrainableParameters => Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    public static AdapterReport Read(string folder)
    {
        // A registered method's config is parsed and validated in full; a PEFT method PeftSharp does not implement yet is
        // still described from its raw keys and tensors (inspect needs no layer code).
        var (peftType, json) = PeftAdapterFiles.ReadConfigJson(folder);
        var method = MethodRegistry.Default.Find(peftType);
        var config = method is null ? null : PeftAdapterFiles.ReadConfig(folder);
        if (config is not null)
        {
            json = JsonNode.Parse(MethodRegistry.Default.SerializeConfig(config))!.AsObject();
        }
        else if (!PeftTypes.Known.Contains(peftType.ToUpperInvariant()))
        {
            throw new ConfigException($"{Path.Combine(folder, PeftAdapterFiles.ConfigFileName)}: unknown peft_type \"{peftType}\"");
        }
        using var file = PeftAdapterFiles.OpenWeights(folder);
        if (config is Methods.Lora.LoraConfig lora)
        {
            Methods.Lora.LoraFileCheck.Check(lora, file.Entries, file.Path);
        }
        var tensors = file.Entries.Select(e => (e.Name, e.DType.ToString(), e.Shape)).ToList();
        return new AdapterReport(folder, peftType, method?.Name ?? peftType.ToLowerInvariant() + " (not implemented in PeftSharp yet)", json, tensors);
    }

    /// <summary>Rank per adapted module, read from the factor shapes (lora_A rows), so rank_pattern shows as it was applied.</summary>
    public IReadOnlyDictionary<string, long> ModuleRanks =>
        Tensors.Where(t => t.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal) || t.Name.EndsWith(".lora_embedding_A", StringComparison.Ordinal))
            .ToDictionary(t => ModuleOf(t.Name), t => t.Shape[0]);

    private static string ModuleOf(string key)
    {
        var k = key.StartsWith(PeftModel.NamePrefix, StringComparison.Ordinal) ? key[PeftModel.NamePrefix.Length..] : key;
        var i = k.IndexOf(".lora_", StringComparison.Ordinal);
        return i < 0 ? k : k[..i];
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["folder"] = Folder,
            ["peft_type"] = PeftType,
            ["method"] = Method,
        };
        foreach (var key in new[] { "r", "lora_alpha", "alpha", "use_rslora", "use_dora", "lora_dropout", "task_type", "base_model_name_or_path", "modules_to_save", "layers_to_transform", "rank_pattern", "alpha_pattern" })
        {
            if (ConfigJson.TryGetPropertyValue(key, out var v))
            {
                o[key] = v?.DeepClone();
            }
        }
        o["target_modules"] = ConfigJson["target_modules"]?.DeepClone();
        o["trainable_parameters"] = TrainableParameters;
        o["module_ranks"] = new JsonObject(ModuleRanks.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        if (Spectra is not null)
        {
            o["spectrum"] = new JsonArray(Spectra.Select(sp => (JsonNode)new JsonObject
            {
                ["module"] = sp.Module,
                ["shape"] = new JsonArray(sp.Rows, sp.Columns),
                ["singular_values"] = new JsonArray(sp.SingularValues.Take(64).Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
            }).ToArray());
        }
        o["tensors"] = new JsonArray(Tensors.Select(t => (JsonNode)new JsonObject
        {
            ["name"] = t.Name,
            ["dtype"] = t.DType,
            ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
        }).ToArray());
        return o;
    }

    public void Render()
    {
        var summary = new Table().AddColumns("key", "value").HideHeaders().Border(TableBorder.Rounded);
        summary.AddRow("folder", Markup.Escape(Folder));
        summary.AddRow("method", Markup.Escape($"{Method} ({PeftType})"));
        foreach (var key in new[] { "r", "lora_alpha", "use_rslora", "task_type", "base_model_name_or_path" })
        {
            if (ConfigJson[key] is { } v)
            {
                summary.AddRow(key, Markup.Escape(v.ToJsonString()));
            }
        }
        summary.AddRow("target_modules", Markup.Escape(ConfigJson["target_modules"]?.ToJsonString() ?? "null"));
        summary.AddRow("trainable parameters", TrainableParameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        AnsiConsole.Write(summary);
        var table = new Table().AddColumns("tensor", "dtype", "shape").Border(TableBorder.Simple);
        foreach (var (name, dtype, shape) in Tensors)
        {
            table.AddRow(Markup.Escape(name), Markup.Escape(dtype), Markup.Escape("[" + string.Join(", ", shape) + "]"));
        }
        AnsiConsole.Write(table);
        if (Spectra is { Count: > 0 })
        {
            var spec = new Table().AddColumns("module", "ΔW shape", "top singular values", "energy in top 1 / 4").Border(TableBorder.Simple);
            foreach (var sp in Spectra)
            {
                spec.AddRow(Markup.Escape(sp.Module), $"{sp.Rows}×{sp.Columns}",
                    Markup.Escape(string.Join(" ", sp.SingularValues.Take(8).Select(v => v.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)))),
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{sp.EnergyInTop(1):P0} / {sp.EnergyInTop(4):P0}"));
            }
            AnsiConsole.Write(spec);
        }
    }
}

/// <summary>Reads ΔW spectra: from LoRA factors in the file alone, or from any method's layers with a base model.</summary>
internal static class SpectrumReader
{
    public static IReadOnlyList<ModuleSpectrum> Read(string adapterDir, string? modelDir)
    {
        if (modelDir is not null)
        {
            var (model, peft) = ModelLoading.Load(modelDir, [new DirectoryInfo(adapterDir)], merge: false, TorchSharp.torch.CPU);
            using var _ = model;
            return DeltaSpectrum.Of(peft!, PeftAdapterFiles.DefaultAdapterName);
        }
        var config = PeftAdapterFiles.ReadConfig(adapterDir) as Methods.Lora.LoraConfig
            ?? throw new PeftException("--spectrum without --model reads LoRA factors only; give --model for other methods");
        if (config.UseDora)
        {
            throw new PeftException("a DoRA update depends on the base weight; give --model for its spectrum");
        }
        using var file = PeftAdapterFiles.OpenWeights(adapterDir);
        var result = new List<ModuleSpectrum>();
        foreach (var a in file.Entries.Where(e => e.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal) && e.Shape.Length == 2))
        {
            var prefix = a.Name[..^".lora_A.weight".Length];
            var module = prefix.StartsWith(PeftModel.NamePrefix, StringComparison.Ordinal) ? prefix[PeftModel.NamePrefix.Length..] : prefix;
            var scaling = ((Methods.Lora.LoraConfig)config.ForModule(module)).Scaling;
            using var ta = file.Read(a.Name);
            using var tb = file.Read(prefix + ".lora_B.weight");
            result.Add(new ModuleSpectrum(module, tb.shape[0], ta.shape[1], DeltaSpectrum.OfFactors(tb, ta, scaling)));
        }
        return result;
    }
}
