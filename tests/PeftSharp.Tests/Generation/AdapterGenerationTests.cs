using System.Text.Json;
using PeftSharp.Core;
using PeftSharp.Generation;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using PeftSharp.Tests.Support;
using PeftSharp.Tokenization;
using TorchSharp;

namespace PeftSharp.Tests.Generation;

public class AdapterGenerationTests
{
    private static string Stories => SharedPaths.Asset("models", "stories260K");

    [Fact]
    public void Greedy_output_with_an_active_lora_equals_the_merged_model_and_differs_from_base()
    {
        torch.manual_seed(61);
        var tokenizer = HfTokenizer.FromFolder(Stories);
        var options = new GenerationOptions { MaxNewTokens = 30 };
        using var model = AutoModel.FromPretrained(Stories);
        var baseIds = new TextGeneration(model, tokenizer).Generate("Once upon a time", options).GeneratedIds;
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of("q_proj", "v_proj", "down_proj") });
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.copy_(torch.randn_like(p) * 0.3);
            }
        }
        var active = new TextGeneration(model, tokenizer).Generate("Once upon a time", options).GeneratedIds;
        var merged = (PretrainedModel)peft.MergeAndUnload();
        var afterMerge = new TextGeneration(merged, tokenizer).Generate("Once upon a time", options).GeneratedIds;
        Assert.Equal(active, afterMerge);
        Assert.NotEqual(baseIds, active);
    }

    [Fact]
    public void Streamed_pieces_concatenate_to_the_decoded_continuation()
    {
        var tokenizer = HfTokenizer.FromFolder(Stories);
        using var model = AutoModel.FromPretrained(Stories);
        var pieces = new List<string>();
        var result = new TextGeneration(model, tokenizer).Generate("Lily and Tom", new GenerationOptions { MaxNewTokens = 20 }, onText: pieces.Add);
        Assert.True(pieces.Count > 1);
        var full = tokenizer.Decode([.. result.PromptIds, .. result.GeneratedIds], skipSpecialTokens: true);
        Assert.Equal(full, tokenizer.Decode(result.PromptIds, skipSpecialTokens: true) + string.Concat(pieces));
    }

    [Fact]
    public void Cli_generate_with_adapter_equals_merged_and_reports_ids_as_json()
    {
        torch.manual_seed(62);
        var dir = Directory.CreateTempSubdirectory("peftsharp-gen-").FullName;
        try
        {
            using (var model = AutoModel.FromPretrained(Stories))
            {
                var peft = PeftModel.Create(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = TargetModules.Of("q_proj", "v_proj") });
                using (torch.no_grad())
                {
                    foreach (var p in peft.TrainableParameters())
                    {
                        p.copy_(torch.randn_like(p) * 0.3);
                    }
                }
                PeftAdapterFiles.Save(peft, dir);
            }
            var args = new[] { "generate", "--model", Stories, "--adapter", dir, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--temperature", "0", "--json" };
            var active = CliRunner.Run(args);
            var merged = CliRunner.Run([.. args, "--merge"]);
            Assert.True(active.ExitCode == 0, active.Stderr);
            Assert.True(merged.ExitCode == 0, merged.Stderr);
            using var a = JsonDocument.Parse(active.Stdout);
            using var m = JsonDocument.Parse(merged.Stdout);
            var ids = a.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
            Assert.Equal(24, ids.Count);
            Assert.Equal(ids, m.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
            Assert.Equal(1, a.RootElement.GetProperty("prompt_ids")[0].GetInt32());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Cli_generate_rejects_a_prompt_longer_than_the_context_unless_truncation_is_asked()
    {
        var longPrompt = string.Join(' ', Enumerable.Repeat("the little dog ran", 200));
        var r = CliRunner.Run("generate", "--model", Stories, "--prompt", longPrompt, "--max-new-tokens", "8", "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("context", r.Stderr);
        var ok = CliRunner.Run("generate", "--model", Stories, "--prompt", longPrompt, "--max-new-tokens", "8", "--json", "--truncate-prompt");
        Assert.True(ok.ExitCode == 0, ok.Stderr);
    }
}
